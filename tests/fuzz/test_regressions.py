"""Every example of the issue "Security and bad input", one named test each.

Most go through the same pipeline as the generated objects (``harness.check_registry`` /
``check_upload``: the API server, the operator's validation, the render with every capability
set, every property): the test passes when the object is refused naming the field, or when what
it renders is safe. The rest assert what the example is about directly.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model_registry_operator.api.validation import parse_spec
from model_registry_operator.kube import ApiError, lookup
from tests.integration.conftest import OperatorProcess
from tests.integration.kube import MR, Cluster, wait_for
from tests.unit.test_render_security import MODES

from .crd_schema import MODEL_REGISTRY_CRD, MODEL_UPLOAD_JOB_CRD, api_version
from .harness import (
    DB_PASSWORD,
    ApiServer,
    check_registry,
    check_upload,
    containers,
    pod_specs,
    render_all,
    upload_problems,
)
from .strategies import TARGET_REGISTRIES

pytestmark = pytest.mark.integration
CLUSTER_ROLE_BINDING = lookup("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")

Obj = dict[str, Any]
MYSQL: Obj = {
    "host": "mysql.db.svc",
    "port": 3306,
    "database": "model_registry",
    "username": "mlmduser",
    "passwordSecret": {"name": "db-credentials", "key": "password"},
}
POSTGRES: Obj = {
    "host": "pg.db.svc",
    "database": "model_registry",
    "username": "mlmduser",
    "passwordSecret": {"name": "db-credentials", "key": "password"},
}
UPLOAD: Obj = {
    "registry": {"name": "reg"},
    "intent": "create_model",
    "source": {"s3": {"bucket": "models", "key": "llm/v1", "credentialsSecret": "s3-creds"}},
    "destination": {"oci": {"uri": "registry.local:5000/org/llm:v1"}},
    "model": {"registeredModel": {"name": "llm"}},
}


def registry(**sections: Any) -> Obj:
    return {"rest": {}, **sections}


def upload(**changes: Any) -> Obj:
    spec: Obj = {key: (dict(value) if isinstance(value, dict) else value) for key, value in UPLOAD.items()}
    spec.update(changes)
    return spec


def refusal(api: ApiServer, kind: str, spec: Obj, name: str = "reg") -> str:
    """The API server's refusal of a dry-run create, or an assertion error when it accepts."""
    crd, plural = (
        (MODEL_REGISTRY_CRD, "modelregistries")
        if kind == "ModelRegistry"
        else (MODEL_UPLOAD_JOB_CRD, "modeluploadjobs")
    )
    body = {
        "apiVersion": api_version(crd),
        "kind": kind,
        "metadata": {"name": name, "namespace": api.namespace},
        "spec": spec,
    }
    result = api.create_dry_run(body, plural)
    assert isinstance(result, ApiError), f"the API server accepted {spec}"
    return result.message


# ------------------------------------------------------------------------------- DSN injection


def test_mysql_database_cannot_redirect_the_dsn(fuzz_api: ApiServer) -> None:
    database = "a@tcp(evil.example:3306)/mr?allowCleartextPasswords=true&allowAllFiles=true&x="
    check_registry(fuzz_api, "reg", registry(mysql={**MYSQL, "database": database}), [])


@pytest.mark.parametrize("field", ["host", "username"])
def test_mysql_host_and_user_cannot_redirect_the_dsn(fuzz_api: ApiServer, field: str) -> None:
    value = "u:x@tcp(evil.example:3306)/mr?allowAllFiles=true&" if field == "username" else "evil.example:1)/x?a="
    check_registry(fuzz_api, "reg", registry(mysql={**MYSQL, field: value}), [])


def test_postgres_host_cannot_turn_tls_off(fuzz_api: ApiServer) -> None:
    host = "pg.db.svc/model_registry?sslmode=disable&application_name="
    check_registry(fuzz_api, "reg", registry(postgres={**POSTGRES, "host": host, "sslMode": "verify-full"}), [])


@pytest.mark.parametrize("field", ["database", "username", "hostAddress"])
def test_postgres_fields_cannot_turn_tls_off(fuzz_api: ApiServer, field: str) -> None:
    value = "x?sslmode=disable&" if field != "hostAddress" else "10.0.0.1/x?sslmode=disable&a="
    spec = {**POSTGRES, field: value, "sslMode": "verify-full"}
    check_registry(fuzz_api, "reg", registry(postgres=spec), [])


# ------------------------------------------------------------------------------- escaping


def test_mysql_ssl_cipher_cannot_expand_the_dsn_variable(fuzz_api: ApiServer) -> None:
    check_registry(fuzz_api, "reg", registry(mysql={**MYSQL, "sslCipher": "$(MR_EMBEDMD_DATABASE_DSN)"}), [])


@pytest.mark.parametrize("value", ["$(MR_EMBEDMD_DATABASE_DSN)", "$$(VAR)", "a$(VAR)$"])
def test_upload_env_values_cannot_expand_variables(fuzz_api: ApiServer, value: str) -> None:
    spec = upload(source={"s3": {"bucket": "models", "key": value, "credentialsSecret": "s3-creds"}})
    spec["registry"] = {"name": "reg", "author": value}
    check_upload(fuzz_api, "up", spec, TARGET_REGISTRIES["plain"], [])


# ------------------------------------------------------------------------------- templates


def test_proxy_tls_key_cannot_add_a_proxy_argument(fuzz_api: ApiServer) -> None:
    proxy = {
        "tlsCertificateSecret": {"name": "proxy-tls", "key": "tls.crt"},
        "tlsKeySecret": {"name": "proxy-tls", "key": "tls.key\n  - --ignore-paths=/*"},
    }
    check_registry(fuzz_api, "reg", registry(mysql=MYSQL, kubeRBACProxy=proxy), [])
    for objects in render_all("reg", fuzz_api.namespace, registry(mysql=MYSQL, kubeRBACProxy=proxy)).values():
        for _, pod in pod_specs(objects if isinstance(objects, list) else []):
            for c in containers(pod):
                assert not any(str(a).startswith("--ignore-paths") for a in c.get("args") or []), c["args"]


@pytest.mark.parametrize("mode", ["kubeRBACProxy", "oauthProxy"])
def test_a_value_like_a_map_stays_one_argument(fuzz_api: ApiServer, mode: str) -> None:
    proxy = {
        "tlsCertificateSecret": {"name": "proxy-tls", "key": "a: b"},
        "tlsKeySecret": {"name": "proxy-tls", "key": "tls.key"},
    }
    check_registry(fuzz_api, "reg", registry(mysql={**MYSQL, "sslCipher": "a: b"}, **{mode: proxy}), [])


# ------------------------------------------------------------------------------- around the proxy


@pytest.mark.parametrize("mode", ["kubeRBACProxy", "oauthProxy"])
@pytest.mark.parametrize("route", ["enabled", "disabled"])
def test_rest_port_is_not_reachable_around_the_proxy(fuzz_api: ApiServer, mode: str, route: str) -> None:
    """Rendered for plain Kubernetes, OpenShift and Istio clusters: loopback, or a NetworkPolicy."""
    check_registry(fuzz_api, "reg", registry(postgres=POSTGRES, **{mode: {"serviceRoute": route}}), [])


def test_upload_job_for_an_istio_registry_sends_no_token_over_plain_http(fuzz_api: ApiServer) -> None:
    check_upload(fuzz_api, "up", upload(), TARGET_REGISTRIES["istio"], [])


@pytest.mark.parametrize("target", ["kube-rbac-proxy", "oauth-proxy"])
def test_upload_job_for_a_proxied_registry_uses_https(fuzz_api: ApiServer, target: str) -> None:
    check_upload(fuzz_api, "up", upload(), TARGET_REGISTRIES[target], [])


@pytest.mark.parametrize("is_secure", [None, True])
def test_upload_job_sends_no_token_to_an_http_address_unless_told(fuzz_api: ApiServer, is_secure: bool | None) -> None:
    target: Obj = {"address": "http://mr.example.com", "tokenSecret": {"name": "mr-token", "key": "token"}}
    if is_secure is not None:
        target["isSecure"] = is_secure
    check_upload(fuzz_api, "up", upload(registry=target), {}, [])


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("field", ["rest.image", "postgres.image", "kubeRBACProxy.image", "oauthProxy.image"])
def test_emoji_image_tag_is_a_problem_not_a_crash(fuzz_api: ApiServer, field: str) -> None:
    section, _ = field.split(".")
    spec = registry(postgres={"generateDeployment": True})
    spec.setdefault(section, {})["image"] = "quay.io/x:🚀"
    check_registry(fuzz_api, "reg", spec, [])


def test_emoji_upload_image_is_a_problem_not_a_crash(fuzz_api: ApiServer) -> None:
    check_upload(fuzz_api, "up", upload(job={"image": "quay.io/x:🚀"}), TARGET_REGISTRIES["plain"], [])


MALFORMED = {
    "unclosed-list": "spec: [",
    "tabs": "kind: ModelRegistry\nmetadata:\n\tname: reg\n",
    "tags": "kind: ModelRegistry\nspec: !!python/object/apply:os.system ['true']\n",
    "unknown-tag": "kind: ModelRegistry\nspec: !custom {}\n",
    "deep-nesting": "kind: ModelRegistry\nspec: " + "[" * 5000 + "]" * 5000 + "\n",
    "metadata-string": 'kind: ModelRegistry\nmetadata: "reg"\nspec: {}\n',
    "spec-string": "kind: ModelRegistry\nmetadata: {name: reg}\nspec: reg\n",
    "emoji-image": "kind: ModelRegistry\nmetadata: {name: reg}\nspec: {rest: {image: 'quay.io/x:🚀'}, "
    "postgres: {generateDeployment: true}}\n",
    "upload-metadata-list": "kind: ModelUploadJob\nmetadata: [a]\nspec: {}\n",
    "not-utf8": b"kind: ModelRegistry\nmetadata: {name: \xff\xfe}\n".decode("latin-1"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_render_file_never_tracebacks(tmp_path: Path, case: str) -> None:
    path = tmp_path / "cr.yaml"
    path.write_bytes(MALFORMED[case].encode("latin-1" if case == "not-utf8" else "utf-8"))
    result = subprocess.run(
        [sys.executable, "-m", "model_registry_operator", "render", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode in (0, 2), (result.returncode, result.stderr[-2000:])
    if result.returncode == 2:
        assert result.stderr.startswith("error: "), result.stderr


# ------------------------------------------------------------------------------- names


@pytest.mark.parametrize("length", [58, 60, 63])
def test_long_name_with_generated_postgres_fits_every_name_and_label(fuzz_api: ApiServer, length: int) -> None:
    check_registry(fuzz_api, "r" * length, registry(postgres={"generateDeployment": True}), [])


@pytest.mark.parametrize("length", [64, 100, 253])
def test_names_past_63_characters_do_not_overflow_labels(fuzz_api: ApiServer, length: int) -> None:
    check_registry(fuzz_api, "r" * length, registry(mysql=MYSQL, kubeRBACProxy={}), [])


@pytest.mark.parametrize("name", ["reg.example", "1reg", "0.0"])
def test_names_with_dots_or_a_leading_digit_give_valid_objects_or_a_refusal(fuzz_api: ApiServer, name: str) -> None:
    check_registry(fuzz_api, name, registry(mysql=MYSQL, kubeRBACProxy={}), [])


def test_name_of_254_characters_is_refused_naming_metadata_name(fuzz_api: ApiServer) -> None:
    assert "metadata.name" in refusal(fuzz_api, "ModelRegistry", registry(mysql=MYSQL), name="r" * 254)


@pytest.mark.parametrize("length", [62, 63, 64, 200, 253])
def test_upload_job_long_names_get_valid_names_and_labels(fuzz_api: ApiServer, length: int) -> None:
    name = ("a" * 61 + "-b" + "c" * 200)[:length]
    check_upload(fuzz_api, name, upload(), TARGET_REGISTRIES["plain"], [])


@pytest.mark.parametrize("name", ["up.v1", "1up"])
def test_upload_job_names_with_dots_or_a_leading_digit(fuzz_api: ApiServer, name: str) -> None:
    check_upload(fuzz_api, name, upload(), TARGET_REGISTRIES["plain"], [])


# ------------------------------------------------------------------------------- schema


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"kubeRBACProxy": {"port": 0}}, "spec.kubeRBACProxy.port"),
        ({"oauthProxy": {"port": 0}}, "spec.oauthProxy.port"),
        ({"kubeRBACProxy": {"routePort": 0}}, "spec.kubeRBACProxy.routePort"),
        ({"oauthProxy": {"routePort": 0}}, "spec.oauthProxy.routePort"),
        ({"istio": {"gateway": {"rest": {"port": 0}}}}, "spec.istio.gateway.rest.port"),
        ({"istio": {"gateway": {"grpc": {"port": 0}}}}, "spec.istio.gateway.grpc.port"),
    ],
)
def test_port_zero_is_refused_naming_the_field(fuzz_api: ApiServer, section: Obj, field: str) -> None:
    spec = registry(mysql=MYSQL, **section)
    assert field in refusal(fuzz_api, "ModelRegistry", spec)
    _, problems = parse_spec(spec)
    assert any(p.field == field for p in problems), problems


@pytest.mark.parametrize("mode", ["kubeRBACProxy", "oauthProxy"])
def test_rest_port_equal_to_the_proxy_port_is_refused(fuzz_api: ApiServer, mode: str) -> None:
    spec = {"rest": {"port": 8443}, "mysql": MYSQL, mode: {"port": 8443}}
    message = refusal(fuzz_api, "ModelRegistry", spec)
    assert "port" in message, message
    _, problems = parse_spec(spec)
    assert any(p.field in ("spec.rest.port", f"spec.{mode}.port") for p in problems), problems


def test_scratch_size_must_be_a_quantity(fuzz_api: ApiServer) -> None:
    spec = upload(job={"scratchSize": "lots"})
    assert "spec.job.scratchSize" in refusal(fuzz_api, "ModelUploadJob", spec)
    _, problems = upload_problems(spec)
    assert any(p.startswith("spec.job.scratchSize") for p in problems), problems


@pytest.mark.parametrize("field", ["registeredModel", "modelVersion", "modelArtifact"])
def test_superscript_digit_is_not_an_id(fuzz_api: ApiServer, field: str) -> None:
    spec = upload(intent="update_artifact", model={"modelArtifact": {"id": "12"}, field: {"id": "²"}})
    assert f"spec.model.{field}.id" in refusal(fuzz_api, "ModelUploadJob", spec)
    _, problems = upload_problems(spec)
    assert any(p.startswith(f"spec.model.{field}.id") for p in problems), problems


# ------------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    "change",
    [
        {"source": {"uri": {"uri": "https://user:pass@example.com/model.tar.gz"}}},
        {"source": {"s3": {"key": "m", "endpoint": "http://key:secret@minio.local:9000", "credentialsSecret": "c"}}},
        {"registry": {"address": "https://user:pass@mr.example.com"}},
    ],
    ids=["source-uri", "s3-endpoint", "registry-address"],
)
def test_url_credentials_are_not_copied_into_job_env(fuzz_api: ApiServer, change: Obj) -> None:
    check_upload(fuzz_api, "up", upload(**change), TARGET_REGISTRIES["plain"], [])


def test_database_password_stays_in_secrets(fuzz_api: ApiServer) -> None:
    for spec in (
        registry(mysql=MYSQL),
        registry(postgres=POSTGRES, kubeRBACProxy={}),
        registry(postgres={"generateDeployment": True}, oauthProxy={}),
    ):
        check_registry(fuzz_api, "reg", spec, [])
    assert DB_PASSWORD  # the value check_registry looks for outside Secrets


# ------------------------------------------------------------------------------- hardening


def _registry_pods(spec: Obj) -> list[tuple[str, Obj, Obj]]:
    pods = []
    for label, objects in render_all("reg", "ns1", spec).items():
        assert isinstance(objects, list), objects
        for owner, pod in pod_specs(objects):
            pods.append((f"{label}: {owner['kind']}/{owner['metadata']['name']}", pod, owner))
    return pods


def _upload_pod(spec: Obj, target: str = "plain") -> tuple[Obj, list[Obj]]:
    from model_registry_operator.render.modeluploadjob import UploadJobRef, registry_endpoint, render_model_upload_job

    from .harness import UPLOAD_IMAGE

    parsed, problems = upload_problems(spec)
    assert parsed is not None, problems
    endpoint = registry_endpoint("reg", "ns1", TARGET_REGISTRIES[target])
    objects = render_model_upload_job(UploadJobRef("up", "ns1", "uid"), parsed, spec, endpoint, UPLOAD_IMAGE)
    ((_, pod),) = list(pod_specs(objects))
    return pod, objects


REGISTRY_SPECS = {
    f"{db}-{mode}": registry(**({"mysql": MYSQL} if db == "mysql" else {"postgres": POSTGRES}), **extra)
    for db in ("mysql", "postgres")
    for mode, extra in MODES.items()
} | {"generated-postgres": registry(postgres={"generateDeployment": True})}


@pytest.mark.parametrize("case", sorted(REGISTRY_SPECS))
def test_every_registry_container_has_a_read_only_root_filesystem(case: str) -> None:
    for where, pod, _ in _registry_pods(REGISTRY_SPECS[case]):
        for c in containers(pod):
            assert (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is True, f"{where} {c['name']}"


def test_upload_container_has_a_read_only_root_filesystem() -> None:
    pod, _ = _upload_pod(upload())
    for c in containers(pod):
        assert (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is True, c["name"]


TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.mark.parametrize("case", sorted(REGISTRY_SPECS))
def test_rest_and_database_containers_get_no_service_account_token(case: str) -> None:
    """The REST image may be the user's: it must not hold the (auth-delegator) token of the proxy."""
    for where, pod, _ in _registry_pods(REGISTRY_SPECS[case]):
        assert pod.get("automountServiceAccountToken") is False, where
        for c in containers(pod):
            if c["name"] in ("rest-container", "postgres") or "postgres" in where.split("/")[-1]:
                for mount in c.get("volumeMounts") or []:
                    assert not str(mount.get("mountPath", "")).startswith(TOKEN_DIR), f"{where} {c['name']}: {mount}"


def test_upload_job_secret_volumes_are_not_world_readable() -> None:
    spec = upload(
        registry={
            "name": "reg",
            "tokenSecret": {"name": "t", "key": "token"},
            "caSecret": {"name": "ca", "key": "ca.crt"},
        }
    )
    spec["source"] = {"oci": {"uri": "quay.io/org/model:v1", "credentialsSecret": "pull"}}
    spec["destination"] = {"s3": {"key": "out", "credentialsSecret": "s3-dst"}}
    pod, _ = _upload_pod(spec)
    secrets = [v for v in pod.get("volumes") or [] if "secret" in v]
    assert len(secrets) >= 3
    for volume in secrets:
        mode = volume["secret"].get("defaultMode")
        assert mode in (0o400, 0o440), f"{volume['name']}: defaultMode {mode!r}"
        for item in volume["secret"].get("items") or []:
            assert item.get("mode", mode) in (0o400, 0o440), f"{volume['name']}: {item}"


def test_upload_job_scratch_volume_is_bounded() -> None:
    pod, _ = _upload_pod(upload())
    empty_dirs = [v for v in pod.get("volumes") or [] if "emptyDir" in v]
    assert empty_dirs
    for volume in empty_dirs:
        assert volume["emptyDir"].get("sizeLimit"), volume


def test_upload_job_runs_as_a_dedicated_service_account() -> None:
    pod, objects = _upload_pod(upload())
    account = pod.get("serviceAccountName") or pod.get("serviceAccount")
    assert account, "the upload Pod runs as the namespace's default ServiceAccount"
    assert account != "default", "the upload Pod runs as the namespace's default ServiceAccount"
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        for subject in binding.get("subjects") or []:
            assert subject.get("name") != "default", binding


def test_empty_resources_keep_limits() -> None:
    for where, pod, _ in _registry_pods(registry(mysql=MYSQL, rest={"resources": {}}, kubeRBACProxy={})):
        for c in containers(pod):
            assert ((c.get("resources") or {}).get("limits") or {}).get("memory"), f"{where} {c['name']}"
    pod, _ = _upload_pod(upload(job={"resources": {}}))
    for c in containers(pod):
        assert ((c.get("resources") or {}).get("limits") or {}).get("memory"), c["name"]


# ------------------------------------------------------------------------------- cluster-scoped names


@pytest.fixture(scope="module")
def running_operator(fuzz_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(fuzz_cluster.kubeconfig, tmp_path_factory.mktemp("fuzz-operator"))
    yield proc
    proc.stop()


def _bindings_of(cluster: Cluster, namespace: str, name: str) -> list[Obj]:
    """ClusterRoleBindings naming the registry's ServiceAccount as a subject."""
    items = cluster.list(CLUSTER_ROLE_BINDING, None)
    return [
        b
        for b in items
        if any(s.get("namespace") == namespace and s.get("name") == name for s in b.get("subjects") or [])
    ]


def test_same_name_in_two_namespaces_never_takes_over_the_first_registrys_binding(
    fuzz_cluster: Cluster, running_operator: OperatorProcess
) -> None:
    """Registry `shared` in two namespaces, both behind kube-rbac-proxy: the first keeps its
    auth-delegator binding while the second exists and after it is deleted."""
    first, second = f"fz-a-{uuid.uuid4().hex[:6]}", f"fz-b-{uuid.uuid4().hex[:6]}"
    mysql = {k: v for k, v in MYSQL.items() if k != "passwordSecret"}  # no Secret to read
    spec = registry(mysql=mysql, kubeRBACProxy={"serviceRoute": "disabled"})
    body = {"apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry", "spec": spec}
    try:
        for namespace in (first, second):
            fuzz_cluster.create_namespace(namespace)
        fuzz_cluster.kube.request_sync(
            "POST", MR.path(first), body={**body, "metadata": {"name": "shared", "namespace": first}}
        )
        wait_for(lambda: _bindings_of(fuzz_cluster, first, "shared"), what="the first registry's binding")
        fuzz_cluster.kube.request_sync(
            "POST", MR.path(second), body={**body, "metadata": {"name": "shared", "namespace": second}}
        )

        def second_settled() -> bool:
            degraded = fuzz_cluster.condition(second, "shared", "Degraded") or {}
            conflict = (degraded.get("status"), degraded.get("reason")) == ("True", "NameConflict")
            return bool(_bindings_of(fuzz_cluster, second, "shared")) or conflict

        wait_for(second_settled, what="a binding or Degraded=True / NameConflict for the second registry")
        time.sleep(2)  # a take-over would happen on the second's reconcile, already done
        assert _bindings_of(fuzz_cluster, first, "shared"), "the second registry took the first one's binding over"
        fuzz_cluster.kubectl("delete", "modelregistry", "shared", "-n", second, "--wait=true", "--timeout=60s")
        time.sleep(2)
        assert _bindings_of(fuzz_cluster, first, "shared"), "deleting the second registry deleted the first's binding"
    finally:
        for namespace in (first, second):
            fuzz_cluster.kubectl("delete", "modelregistries", "--all", "-n", namespace, "--timeout=60s", check=False)
            fuzz_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
