"""Pod hardening of a registry's pods, on the rendered objects, for every security mode.

The REST port behind a proxy (loopback only, probes through the proxy), read-only root
filesystems with emptyDirs for what the servers write, ServiceAccount tokens only in the proxy
sidecar, Secret volumes no wider than 0440, and a memory limit whatever ``rest.resources`` says.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from model_registry_operator.api.validation import parse_spec
from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES, Capabilities
from model_registry_operator.render.database import DatabaseSecrets
from model_registry_operator.render.defaults import apply_runtime_defaults
from model_registry_operator.render.modelregistry import RegistryRef, RenderInputs, render_model_registry
from model_registry_operator.render.security.proxy import HEALTH_PATHS, SERVICE_ACCOUNT_DIR
from model_registry_operator.settings import OperatorSettings

from .cases import DATABASES as DATABASE_CASES
from .test_render_security import CLUSTERS, INGRESS, MODES

Obj = dict[str, Any]

PROXIES = {"kube-rbac-proxy": "kube-rbac-proxy", "oauth-proxy": "oauth-proxy"}  # mode -> sidecar name
PROXY_MODES = [m for m in MODES if m.startswith(("kube-rbac-proxy", "oauth-proxy"))]
DATABASES = ["postgres", "postgres-tls", "postgres-generated", "mysql-tls"]
SECRET = {"name": "db", "key": "password"}


def render(spec_raw: Obj, capabilities: Capabilities = PLAIN_KUBERNETES) -> list[Obj]:
    settings = OperatorSettings()
    spec, problems = parse_spec(spec_raw)
    assert spec is not None, problems
    effective = apply_runtime_defaults(spec, settings, "reg", capabilities)
    inputs = RenderInputs(DatabaseSecrets(password="pw"), "generated-pw", "d1", "cookie", INGRESS)
    return render_model_registry(RegistryRef("reg", "ns1", "uid-1"), effective, settings, capabilities, inputs)


def spec(mode: str, database: str = "postgres", rest: Obj | None = None) -> Obj:
    return {"rest": rest or {}, **DATABASE_CASES[database], **MODES[mode]}


def deployments(objects: list[Obj]) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}


def pod(objects: list[Obj], name: str = "reg") -> Obj:
    spec_: Obj = deployments(objects)[name]["spec"]["template"]["spec"]
    return spec_


def container(pod_spec: Obj, name: str) -> Obj:
    return next(c for c in pod_spec["containers"] if c["name"] == name)


def arg(args: list[str], flag: str) -> str:
    values = [a.partition("=")[2] for a in args if a.startswith(flag + "=")]
    assert len(values) == 1, (flag, args)
    return values[0]


def sidecar_name(mode: str) -> str:
    return next(name for prefix, name in PROXIES.items() if mode.startswith(prefix))


# -- the REST port behind the proxy ---------------------------------------------------------


@pytest.mark.parametrize("mode", PROXY_MODES)
@pytest.mark.parametrize("rest_port", [8080, 9000])
def test_around_the_proxy_rest_port_listens_on_loopback_only(mode: str, rest_port: int) -> None:
    """Issue example "Around the proxy": the REST server listened on 0.0.0.0 behind the proxy."""
    objects = render(spec(mode, rest={"port": rest_port}), CLUSTERS["openshift"])
    pod_spec = pod(objects)
    rest = container(pod_spec, "rest-container")
    assert rest["args"][:2] == ["--hostname=127.0.0.1", f"--port={rest_port}"]
    proxy = container(pod_spec, sidecar_name(mode))
    proxy_port = next(p["containerPort"] for p in proxy["ports"] if p["name"] == "https-proxy")
    assert arg(proxy["args"], "--upstream").startswith(f"http://127.0.0.1:{rest_port}")
    # The Service only offers the proxy's port.
    service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "reg")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["https-proxy"]
    # The probes reach the server through the proxy (by number: a probe's named port is one of
    # its own container), on the health paths only.
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = rest[probe]["httpGet"]
        assert (get["port"], get["scheme"]) == (proxy_port, "HTTPS"), probe
        assert get["path"] in HEALTH_PATHS


@pytest.mark.parametrize("mode", [m for m in PROXY_MODES if m.startswith("kube-rbac-proxy")])
def test_kube_rbac_proxy_lets_only_the_health_paths_through_unauthenticated(mode: str) -> None:
    proxy = container(pod(render(spec(mode))), "kube-rbac-proxy")
    assert arg(proxy["args"], "--ignore-paths") == "/readyz/isDirty,/readyz/health"
    assert not [a for a in proxy["args"] if a.startswith("--allow-paths")]


@pytest.mark.parametrize("mode", [m for m in PROXY_MODES if m.startswith("oauth-proxy")])
def test_oauth_proxy_skips_auth_for_anchored_health_paths_only(mode: str) -> None:
    import re

    proxy = container(pod(render(spec(mode), CLUSTERS["openshift"])), "oauth-proxy")
    regex = re.compile(arg(proxy["args"], "--skip-auth-regex"))
    for path in [*HEALTH_PATHS, "/oauth/healthz", "/metrics"]:
        assert regex.search(path), path
    for path in [
        "/api/model_registry/v1alpha3/registered_models",
        "/readyz/health/../../api/model_registry/v1alpha3/registered_models",
        "/readyz/healthz",
        "/metrics/x",
        "/",
    ]:
        assert not regex.search(path), path


@pytest.mark.parametrize("mode", ["none", "istio", "istio-gateway"])
def test_without_a_proxy_the_rest_port_listens_on_every_address(mode: str) -> None:
    """No proxy: the REST port is the API port. Istio: the sidecar forwards to the pod address."""
    rest = container(pod(render(spec(mode), CLUSTERS["everything"])), "rest-container")
    assert rest["args"][0] == "--hostname=0.0.0.0"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert (rest[probe]["httpGet"]["port"], rest[probe]["httpGet"]["scheme"]) == ("http-api", "HTTP")


# -- read-only root filesystems ---------------------------------------------------------------


@pytest.mark.parametrize(("mode", "database"), list(itertools.product(MODES, DATABASES)))
def test_every_container_has_a_read_only_root_filesystem_and_the_restricted_context(mode: str, database: str) -> None:
    """Issue example "no readOnlyRootFilesystem"; the restricted security context is kept."""
    objects = render(spec(mode, database), CLUSTERS["everything"])
    for name, deployment in deployments(objects).items():
        pod_spec = deployment["spec"]["template"]["spec"]
        assert pod_spec["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        for c in pod_spec["containers"]:
            assert c["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, (name, c["name"])


def test_postgres_writes_only_to_empty_dirs_and_its_claim() -> None:
    """The sclorg image's start scripts write $HOME (passwd, openshift-custom-postgresql.conf),
    the socket directory and /tmp; the data directory is the claim."""
    pod_spec = pod(render(spec("none", "postgres-generated")), "reg-postgres")
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(pod_spec, "postgresql")["volumeMounts"]}
    assert mounts == {
        "/var/lib/pgsql": "home",
        "/var/lib/pgsql/data": "data",
        "/var/run/postgresql": "run",
        "/tmp": "tmp",
    }
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": "reg-postgres-storage"}}
    for name in ("home", "run", "tmp"):
        assert volumes[name]["emptyDir"]["sizeLimit"], name


# -- ServiceAccount tokens -----------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "database"), list(itertools.product(MODES, ["postgres", "postgres-generated"])))
def test_service_account_token_is_mounted_only_into_a_proxy_sidecar(mode: str, database: str) -> None:
    """Issue example "the REST container ... gets the auth-delegator token"."""
    objects = render(spec(mode, database), CLUSTERS["everything"])
    for name, deployment in deployments(objects).items():
        pod_spec = deployment["spec"]["template"]["spec"]
        assert pod_spec["automountServiceAccountToken"] is False, name
        projected = {v["name"] for v in pod_spec.get("volumes", []) if "projected" in v}
        for c in pod_spec["containers"]:
            token_mounts = [m for m in c.get("volumeMounts", []) if m["name"] in projected]
            if c["name"] in PROXIES.values():
                assert token_mounts == [
                    {"name": "proxy-api-access", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}
                ]
            else:
                assert token_mounts == [], (name, c["name"])
                assert all(not m["mountPath"].startswith("/var/run/secrets") for m in c.get("volumeMounts", []))
    if mode in PROXY_MODES:
        volume = next(v for v in pod(objects)["volumes"] if v["name"] == "proxy-api-access")
        sources = volume["projected"]["sources"]
        assert sources[0] == {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}
        assert {"key": "ca.crt", "path": "ca.crt"} in sources[1]["configMap"]["items"]
    else:
        assert "proxy-api-access" not in {v["name"] for v in pod(objects).get("volumes", [])}


# -- Secret volume modes ----------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "database"), list(itertools.product(MODES, DATABASES)))
def test_secret_volumes_are_at_most_0440(mode: str, database: str) -> None:
    """TLS of the proxies, the cookie secret, database certificates: owner and group read only."""
    objects = render(spec(mode, database), CLUSTERS["everything"])
    for name, deployment in deployments(objects).items():
        for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
            source = volume.get("secret")
            if source is None:
                continue
            assert source["defaultMode"] in (0o400, 0o440), (name, volume)
            assert all(item.get("mode", 0o400) in (0o400, 0o440) for item in source.get("items", []))


def test_oauth_cookie_and_proxy_tls_volumes_are_0440() -> None:
    volumes = {v["name"]: v for v in pod(render(spec("oauth-proxy"), CLUSTERS["openshift"]))["volumes"]}
    for name in ("oauth-proxy-cookie", "oauth-proxy-cert", "oauth-proxy-key"):
        assert volumes[name]["secret"]["defaultMode"] == 0o440, name
    volumes = {v["name"]: v for v in pod(render(spec("kube-rbac-proxy")))["volumes"]}
    for name in ("kube-rbac-proxy-cert", "kube-rbac-proxy-key"):
        assert volumes[name]["secret"]["defaultMode"] == 0o440, name


# -- resources -------------------------------------------------------------------------------------

DEFAULT = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(None, DEFAULT, id="absent"),
        pytest.param({}, DEFAULT, id="empty"),
        pytest.param({"limits": {}, "requests": {}}, DEFAULT, id="empty-maps"),
        pytest.param(
            {"limits": {"cpu": "2"}},
            {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "256Mi"}},
            id="cpu-limit-only",
        ),
        pytest.param(
            {"requests": {"memory": "1Gi"}},
            {"requests": {"memory": "1Gi", "cpu": "100m"}, "limits": {"memory": "1Gi"}},
            id="request-above-the-default-limit",
        ),
        pytest.param(
            {"limits": {"memory": "128Mi"}},
            {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}},
            id="limit-below-the-default-request",
        ),
        pytest.param(
            {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": 2, "memory": "2Gi"}},
            {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": 2, "memory": "2Gi"}},
            id="complete",
        ),
    ],
)
def test_empty_resources_keep_the_default_memory_limit(given: Obj | None, expected: Obj) -> None:
    """Issue example "`resources: {}` removes every limit": the defaults fill what is missing."""
    rest: Obj = {} if given is None else {"resources": given}
    rendered = container(pod(render(spec("none", rest=rest))), "rest-container")["resources"]
    assert rendered == expected
    assert rendered["limits"]["memory"]
