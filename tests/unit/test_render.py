"""Every template rendered for every option combination."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest

from model_registry_operator.api.validation import parse_spec
from model_registry_operator.names import CONFIG_HASH_ANNOTATION
from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES
from model_registry_operator.render.database import DatabaseSecrets
from model_registry_operator.render.defaults import apply_runtime_defaults
from model_registry_operator.render.modelregistry import (
    RegistryRef,
    RenderInputs,
    render_model_registry,
)
from model_registry_operator.settings import OperatorSettings

from .cases import ANNOTATIONS, DATABASES, RESTS, spec_for

PASSWORD = "p@ss:w/rd?&%#"
COMBINATIONS = list(itertools.product(DATABASES, RESTS, ANNOTATIONS))


def render(
    spec_raw: dict[str, Any],
    *,
    annotations: dict[str, str] | None = None,
    inputs: RenderInputs | None = None,
    settings: OperatorSettings | None = None,
) -> list[dict[str, Any]]:
    settings = settings or OperatorSettings()
    spec, problems = parse_spec(spec_raw)
    assert spec is not None, problems
    effective = apply_runtime_defaults(spec, settings, "reg")
    ref = RegistryRef("reg", "ns1", "uid-123", annotations or {})
    inputs = inputs or RenderInputs(DatabaseSecrets(password=PASSWORD, ssl_password="keypw"), "generated-pw", "d1")
    return render_model_registry(ref, effective, settings, PLAIN_KUBERNETES, inputs)


def by_kind_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def registry_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = by_kind_name(objects)[("Deployment", "reg")]
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def dsn_of(objects: list[dict[str, Any]]) -> str:
    secret = by_kind_name(objects)[("Secret", "reg-db-connection")]
    return base64.b64decode(secret["data"]["dsn"]).decode()


@pytest.mark.parametrize(("database", "rest", "annotations"), COMBINATIONS)
def test_every_combination_renders_valid_objects(database: str, rest: str, annotations: str) -> None:
    objects = render(spec_for(database, rest), annotations=ANNOTATIONS[annotations])
    names = by_kind_name(objects)
    assert len(names) == len(objects), "names are unique per kind"
    for core in [
        ("ServiceAccount", "reg"),
        ("Service", "reg"),
        ("Deployment", "reg"),
        ("Role", "registry-user-reg"),
        ("Secret", "reg-db-connection"),
    ]:
        assert core in names
    for obj in objects:
        meta = obj["metadata"]
        assert meta["namespace"] == "ns1"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "model-registry-operator"
        assert meta["labels"]["modelregistry.opendatahub.io/registry"] == "reg"
        (owner,) = meta["ownerReferences"]
        assert owner == {
            "apiVersion": "modelregistry.opendatahub.io/v1beta1",
            "kind": "ModelRegistry",
            "name": "reg",
            "uid": "uid-123",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    generated = DATABASES[database].get("postgres", {}).get("generateDeployment", False)
    postgres_objects = {
        ("Secret", "reg-postgres-credentials"),
        ("PersistentVolumeClaim", "reg-postgres-storage"),
        ("Deployment", "reg-postgres"),
        ("Service", "reg-postgres"),
        ("NetworkPolicy", "reg-postgres"),
    }
    assert postgres_objects <= names.keys() if generated else not postgres_objects & names.keys()

    container = registry_container(objects)
    port = RESTS[rest].get("port", 8080)
    assert container["command"] == ["/model-registry", "proxy"]
    assert container["args"][:2] == ["--hostname=0.0.0.0", f"--port={port}"]
    assert container["ports"] == [{"name": "http-api", "containerPort": port, "protocol": "TCP"}]
    assert names[("Service", "reg")]["spec"]["ports"][0]["port"] == port
    # The password is only in the connection Secret: not in args, env values or anywhere else.
    for obj in objects:
        if obj["kind"] != "Secret":
            assert PASSWORD not in str(obj)
    service_annotations = names[("Service", "reg")]["metadata"].get("annotations", {})
    assert service_annotations == ANNOTATIONS[annotations]


def test_children_do_not_copy_registry_labels() -> None:
    objects = render(spec_for("postgres", "defaults"))
    for obj in objects:
        assert "team" not in obj["metadata"]["labels"]


def test_runtime_defaults_for_image_and_resources() -> None:
    settings = OperatorSettings(RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE="mirror.local/mr:1.2")  # type: ignore[call-arg]
    container = registry_container(render(spec_for("postgres", "defaults"), settings=settings))
    assert container["image"] == "mirror.local/mr:1.2"
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}}
    custom = registry_container(render(spec_for("postgres", "custom"), settings=settings))
    assert custom["image"] == "example.com/model-registry:v1"
    assert custom["resources"]["limits"] == {"cpu": 2, "memory": "2Gi"}


def test_postgres_dsn_escapes_credentials_and_lives_in_a_secret() -> None:
    objects = render(spec_for("postgres", "defaults"))
    assert dsn_of(objects) == ("postgresql://mr:p%40ss%3Aw%2Frd%3F%26%25%23@pg.example:5432/registry?sslmode=disable")
    env = registry_container(objects)["env"]
    assert env == [
        {"name": "MR_EMBEDMD_DATABASE_DSN", "valueFrom": {"secretKeyRef": {"name": "reg-db-connection", "key": "dsn"}}}
    ]
    assert "--embedmd-database-type=postgres" in registry_container(objects)["args"]


def test_host_address_wins_over_host_as_documented() -> None:
    dsn = dsn_of(render(spec_for("postgres-host-address", "defaults")))
    assert dsn == "postgresql://u@10.1.2.3:6543/r?sslmode=disable"


def test_postgres_tls_mounts_and_dsn_files() -> None:
    """The TLS files are DSN parameters: given a file flag, the registry server would replace
    the spec's sslmode (verify-full) with `require`."""
    objects = render(spec_for("postgres-tls", "defaults"))
    container = registry_container(objects)
    assert not [a for a in container["args"] if a.startswith("--embedmd-database-ssl")]
    volumes = by_kind_name(objects)[("Deployment", "reg")]["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "postgres-ssl-rootcert",
        "configMap": {"name": "pg-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}], "defaultMode": 0o440},
    } in volumes
    assert all(m["readOnly"] for m in container["volumeMounts"])
    # The key password is wired (upstream exposed it to nothing).
    assert dsn_of(objects).endswith(
        "?sslmode=verify-full&sslcert=%2Fetc%2Fpostgres_ssl_cert%2Ftls.crt&sslkey=%2Fetc%2Fpostgres_ssl_key%2Ftls.key"
        "&sslrootcert=%2Fetc%2Fpostgres_ssl_rootcert%2Fca.crt&sslpassword=keypw"
    )


def test_postgres_root_certificate_from_secret() -> None:
    container = registry_container(render(spec_for("postgres-root-secret", "defaults")))
    assert container["volumeMounts"] == [
        {"name": "postgres-ssl-rootcert", "mountPath": "/etc/postgres_ssl_rootcert", "readOnly": True}
    ]


def test_mysql_dsn_and_tls_flags() -> None:
    objects = render(spec_for("mysql-tls", "defaults"))
    # go-sql-driver takes the password verbatim: no escaping.
    assert dsn_of(objects) == f"mr:{PASSWORD}@tcp(mysql.example:3306)/model_registry?charset=utf8mb4"
    args = registry_container(objects)["args"]
    assert args[2:] == [
        "--embedmd-database-type=mysql",
        "--embedmd-database-ssl-cert=/etc/mysql_ssl_cert/tls.crt",
        "--embedmd-database-ssl-key=/etc/mysql_ssl_key/tls.key",
        "--embedmd-database-ssl-root-cert=/etc/mysql_ssl_rootcert/ca.crt",
        "--embedmd-database-ssl-ca=/etc/mysql_ssl_rootcerts/",
        "--embedmd-database-ssl-cipher=TLS_AES_256_GCM_SHA384",
        "--embedmd-database-ssl-verify-server-cert=true",
    ]


def test_mysql_without_password_secret() -> None:
    assert (
        dsn_of(render(spec_for("mysql-no-password", "defaults"))) == "anon@tcp(mysql.example:3306)/db?charset=utf8mb4"
    )


def test_generated_postgres_honours_database_and_username() -> None:
    objects = render(spec_for("postgres-generated-custom", "defaults"))
    names = by_kind_name(objects)
    secret = names[("Secret", "reg-postgres-credentials")]
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"username": "me", "password": "generated-pw", "database": "mydb"}
    assert dsn_of(objects) == "postgresql://me:generated-pw@reg-postgres:5432/mydb?sslmode=disable"
    pg = names[("Deployment", "reg-postgres")]
    assert pg["spec"]["strategy"] == {"type": "Recreate"}
    assert pg["spec"]["template"]["spec"]["containers"][0]["image"] == "example/pg:16"
    # Database pods must not match the registry's selector.
    registry_selector = names[("Deployment", "reg")]["spec"]["selector"]["matchLabels"]
    pg_labels = pg["spec"]["template"]["metadata"]["labels"]
    assert not all(pg_labels.get(k) == v for k, v in registry_selector.items())
    policy = names[("NetworkPolicy", "reg-postgres")]["spec"]
    assert policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == registry_selector
    assert names[("PersistentVolumeClaim", "reg-postgres-storage")]["metadata"]["annotations"] == {
        "modelregistry.opendatahub.io/retain": "true"
    }


def test_generated_postgres_defaults() -> None:
    objects = render(spec_for("postgres-generated", "defaults"))
    assert dsn_of(objects) == "postgresql://modelregistry:generated-pw@reg-postgres:5432/model_registry?sslmode=disable"
    image = by_kind_name(objects)[("Deployment", "reg-postgres")]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "quay.io/sclorg/postgresql-16-c10s:latest"


def test_config_hash_changes_with_referenced_data_and_password() -> None:
    def pod_hash(inputs: RenderInputs) -> str:
        deployment = by_kind_name(render(spec_for("postgres", "defaults"), inputs=inputs))[("Deployment", "reg")]
        value: str = deployment["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        return value

    base = pod_hash(RenderInputs(DatabaseSecrets(password="a"), "", "digest-1"))
    assert base == pod_hash(RenderInputs(DatabaseSecrets(password="a"), "", "digest-1"))
    assert base != pod_hash(RenderInputs(DatabaseSecrets(password="b"), "", "digest-1"))
    assert base != pod_hash(RenderInputs(DatabaseSecrets(password="a"), "", "digest-2"))


def test_restricted_security_context_and_probes() -> None:
    objects = render(spec_for("mysql", "defaults"))
    pod = by_kind_name(objects)[("Deployment", "reg")]["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz/isDirty"
    assert container["livenessProbe"]["httpGet"]["path"] == "/readyz/isDirty"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz/health"
    assert pod["serviceAccountName"] == "reg"


def test_role_grants_get_on_the_service_only() -> None:
    role = by_kind_name(render(spec_for("mysql", "defaults")))[("Role", "registry-user-reg")]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["services", "endpoints"], "resourceNames": ["reg"], "verbs": ["get"]}
    ]
