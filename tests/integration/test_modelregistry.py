"""ModelRegistry end to end on the local control plane with the operator running as a process."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from model_registry_devcluster.simnode import SimulatedNode
from model_registry_operator.kube import lookup
from tests.backends.databases import MariaDBServer, PostgresServer

from .conftest import OperatorProcess
from .kube import MR, Cluster, wait_for

pytestmark = pytest.mark.integration

DEPLOYMENT = lookup("apps/v1", "Deployment")
SERVICE = lookup("v1", "Service")
SECRET = lookup("v1", "Secret")
SERVICE_ACCOUNT = lookup("v1", "ServiceAccount")
ROLE = lookup("rbac.authorization.k8s.io/v1", "Role")
PVC = lookup("v1", "PersistentVolumeClaim")
NETWORK_POLICY = lookup("networking.k8s.io/v1", "NetworkPolicy")
EVENT = lookup("v1", "Event")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDBServer]:
    with MariaDBServer() as server:
        yield server


def password_secret(name: str, password: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"password": password}}
    )


def registry(name: str, spec: dict[str, Any], version: str = "v1beta1") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": f"modelregistry.opendatahub.io/{version}",
            "kind": "ModelRegistry",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def pg_spec(server: PostgresServer, **rest: Any) -> dict[str, Any]:
    return {
        "rest": dict(rest),
        "postgres": {
            "host": server.host,
            "port": server.port,
            "database": server.database,
            "username": server.user,
            "passwordSecret": {"name": "db-password", "key": "password"},
        },
    }


def my_spec(server: MariaDBServer) -> dict[str, Any]:
    return {
        "rest": {},
        "mysql": {
            "host": server.host,
            "port": server.port,
            "database": server.database,
            "username": server.user,
            "passwordSecret": {"name": "db-password", "key": "password"},
        },
    }


def dsn(cluster: Cluster, namespace: str, name: str) -> str:
    secret = cluster.get(SECRET, namespace, f"{name}-db-connection")
    assert secret is not None
    return base64.b64decode(secret["data"]["dsn"]).decode()


def container(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    deployment = cluster.get(DEPLOYMENT, namespace, name)
    assert deployment is not None
    result: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return result


def test_create_reaches_available_with_live_database(
    cluster: Cluster, namespace: str, postgres: PostgresServer, sim_node: SimulatedNode
) -> None:
    cluster.apply_yaml(password_secret("db-password", postgres.password), namespace)
    cluster.apply_yaml(registry("reg", pg_spec(postgres)), namespace)

    available = cluster.wait_condition(namespace, "reg", "Available", "True", "DeploymentAvailable")
    mr = cluster.get(MR, namespace, "reg")
    assert mr is not None
    assert available["observedGeneration"] == mr["metadata"]["generation"]
    status = mr["status"]
    assert status["observedGeneration"] == mr["metadata"]["generation"]
    assert status["hosts"] == [f"reg.{namespace}.svc.cluster.local", f"reg.{namespace}", "reg"]
    assert status["hostsStr"] == ",".join(status["hosts"])
    assert '"image":"quay.io/opendatahub/model-registry:latest"' in status["specDefaults"]
    cluster.wait_condition(namespace, "reg", "DatabaseAvailable", "True", "Connected")
    cluster.wait_condition(namespace, "reg", "Progressing", "False", "RolloutComplete")
    assert cluster.condition(namespace, "reg", "Degraded")["status"] == "False"  # type: ignore[index]

    uid = mr["metadata"]["uid"]
    for kind, child in [
        (SERVICE_ACCOUNT, "reg"),
        (SERVICE, "reg"),
        (DEPLOYMENT, "reg"),
        (ROLE, "registry-user-reg"),
        (SECRET, "reg-db-connection"),
    ]:
        obj = cluster.get(kind, namespace, child)
        assert obj is not None, f"{kind.kind}/{child} missing"
        assert [o["uid"] for o in obj["metadata"]["ownerReferences"]] == [uid]
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "model-registry-operator"
        managers = {m["manager"] for m in obj["metadata"]["managedFields"] if m["operation"] == "Apply"}
        assert managers == {"model-registry-operator"}
    assert postgres.password not in str(cluster.get(DEPLOYMENT, namespace, "reg"))
    events = cluster.list(EVENT, namespace)
    reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "reg"}
    assert {"Created", "Available"} <= reasons


def test_update_port_image_and_database_switch(
    cluster: Cluster, namespace: str, postgres: PostgresServer, mariadb: MariaDBServer, sim_node: SimulatedNode
) -> None:
    cluster.apply_yaml(password_secret("db-password", postgres.password), namespace)
    cluster.apply_yaml(registry("reg", pg_spec(postgres)), namespace)
    cluster.wait_condition(namespace, "reg", "Available", "True")

    cluster.apply_yaml(registry("reg", pg_spec(postgres, port=9090, image="example.com/mr:v2")), namespace)
    wait_for(lambda: container(cluster, namespace, "reg")["image"] == "example.com/mr:v2", what="image update")
    assert "--port=9090" in container(cluster, namespace, "reg")["args"]
    service = cluster.get(SERVICE, namespace, "reg")
    assert service is not None
    assert service["spec"]["ports"][0]["port"] == 9090
    cluster.wait_condition(namespace, "reg", "Available", "True")
    mr = cluster.get(MR, namespace, "reg")
    assert mr is not None
    cluster.wait_condition(namespace, "reg", "Progressing", "False", "RolloutComplete")
    # Events are posted after the status write: wait for it rather than read it once.
    wait_for(
        lambda: (
            "Updated" in {e["reason"] for e in cluster.list(EVENT, namespace) if e["involvedObject"]["name"] == "reg"}
        ),
        what="Updated event",
    )
    assert cluster.condition(namespace, "reg", "Progressing")["observedGeneration"] == mr["metadata"]["generation"]  # type: ignore[index]

    # PostgreSQL -> MariaDB: the connection switches, the registry converges on the new database.
    cluster.apply_yaml(password_secret("db-password", mariadb.password), namespace)
    cluster.replace(registry("reg", my_spec(mariadb)), namespace)
    wait_for(lambda: "--embedmd-database-type=mysql" in container(cluster, namespace, "reg")["args"], what="mysql args")
    assert dsn(cluster, namespace, "reg") == (
        f"{mariadb.user}:{mariadb.password}@tcp({mariadb.host}:{mariadb.port})/{mariadb.database}?charset=utf8mb4"
    )
    cluster.wait_condition(namespace, "reg", "DatabaseAvailable", "True", "Connected")
    cluster.wait_condition(namespace, "reg", "Available", "True")

    # MariaDB -> auto-provisioned PostgreSQL -> back: the database objects come and go, data stays.
    cluster.replace(registry("reg", {"rest": {}, "postgres": {"generateDeployment": True}}), namespace)
    for kind, child in [
        (DEPLOYMENT, "reg-postgres"),
        (SERVICE, "reg-postgres"),
        (PVC, "reg-postgres-storage"),
        (NETWORK_POLICY, "reg-postgres"),
        (SECRET, "reg-postgres-credentials"),
    ]:
        wait_for(lambda: cluster.get(kind, namespace, child), what=f"generated {kind.kind}/{child}")  # noqa: B023
    generated = cluster.get(SECRET, namespace, "reg-postgres-credentials")
    assert generated is not None
    first_password = generated["data"]["password"]
    cluster.wait_condition(namespace, "reg", "Available", "True")
    cluster.apply_yaml(password_secret("db-password", postgres.password), namespace)
    cluster.replace(registry("reg", pg_spec(postgres)), namespace)
    wait_for(lambda: cluster.get(DEPLOYMENT, namespace, "reg-postgres") is None, what="generated postgres pruned")
    assert cluster.get(SERVICE, namespace, "reg-postgres") is None
    assert cluster.get(NETWORK_POLICY, namespace, "reg-postgres") is None
    assert cluster.get(PVC, namespace, "reg-postgres-storage") is not None, "data is never pruned"
    kept = cluster.get(SECRET, namespace, "reg-postgres-credentials")
    assert kept is not None
    assert kept["data"]["password"] == first_password
    cluster.wait_condition(namespace, "reg", "Available", "True")


def test_children_deleted_or_edited_by_hand_are_repaired(
    cluster: Cluster, namespace: str, postgres: PostgresServer, sim_node: SimulatedNode
) -> None:
    cluster.apply_yaml(password_secret("db-password", postgres.password), namespace)
    cluster.apply_yaml(registry("reg", pg_spec(postgres)), namespace)
    cluster.wait_condition(namespace, "reg", "Available", "True")

    old_uid = cluster.get(SERVICE, namespace, "reg")["metadata"]["uid"]  # type: ignore[index]
    cluster.delete(SERVICE, namespace, "reg")
    wait_for(
        lambda: (s := cluster.get(SERVICE, namespace, "reg")) and s["metadata"]["uid"] != old_uid,
        what="service re-created",
    )
    cluster.delete(ROLE, namespace, "registry-user-reg")
    wait_for(lambda: cluster.get(ROLE, namespace, "registry-user-reg"), timeout=30, what="role re-created")

    cluster.kubectl(
        "patch",
        "deployment",
        "reg",
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"hand/edited:1"}]',
    )
    wait_for(
        lambda: container(cluster, namespace, "reg")["image"] == "quay.io/opendatahub/model-registry:latest",
        what="image edit reverted",
    )
    cluster.wait_condition(namespace, "reg", "Available", "True")


def test_deleting_the_registry_removes_its_children(
    cluster: Cluster, namespace: str, postgres: PostgresServer, sim_node: SimulatedNode
) -> None:
    cluster.apply_yaml(password_secret("db-password", postgres.password), namespace)
    cluster.apply_yaml(registry("reg", {"rest": {}, "postgres": {"generateDeployment": True}}), namespace)
    cluster.wait_condition(namespace, "reg", "Available", "True")
    cluster.kubectl("delete", "modelregistry", "reg", "-n", namespace, "--wait=true", "--timeout=60s")

    def gone() -> bool:
        leftovers = []
        for kind in (DEPLOYMENT, SERVICE, SECRET, SERVICE_ACCOUNT, ROLE, PVC, NETWORK_POLICY):
            leftovers += [
                i["metadata"]["name"]
                for i in cluster.list(kind, namespace, "modelregistry.opendatahub.io/registry=reg")
            ]
        return not leftovers

    wait_for(gone, timeout=60, what="garbage collection of the registry's children")
    assert cluster.get(SECRET, namespace, "db-password") is not None, "the user's Secret is not ours"


def test_crash_looping_pod_makes_the_registry_unavailable(
    cluster: Cluster, namespace: str, postgres: PostgresServer, sim_node: SimulatedNode
) -> None:
    cluster.apply_yaml(password_secret("db-password", postgres.password), namespace)
    cluster.apply_yaml(registry("reg", pg_spec(postgres, image="example.com/sim-crashloop:1")), namespace)
    cond = cluster.wait_condition(namespace, "reg", "Available", "False", "DeploymentUnavailable")
    assert "CrashLoopBackOff" in cond["message"]
    assert "rest-container" in cond["message"]
    degraded = cluster.wait_condition(namespace, "reg", "Degraded", "True", "PodFailing")
    assert "CrashLoopBackOff" in degraded["message"]
    # Fixing the image brings it back.
    cluster.apply_yaml(registry("reg", pg_spec(postgres)), namespace)
    cluster.wait_condition(namespace, "reg", "Available", "True")
    cluster.wait_condition(namespace, "reg", "Degraded", "False")


def test_starting_registry_reports_starting(
    cluster: Cluster, namespace: str, postgres: PostgresServer, sim_node: SimulatedNode
) -> None:
    cluster.apply_yaml(password_secret("db-password", postgres.password), namespace)
    cluster.apply_yaml(registry("reg", pg_spec(postgres, image="example.com/sim-unready:1")), namespace)
    cond = cluster.wait_condition(namespace, "reg", "Available", "False", "Starting")
    assert "starting" in cond["message"].lower() or "endpoints" in cond["message"]
    assert cluster.wait_condition(namespace, "reg", "Progressing", "True")["reason"] == "RollingOut"


def test_missing_secret_is_a_configuration_error_until_it_appears(
    cluster: Cluster, namespace: str, postgres: PostgresServer, sim_node: SimulatedNode, operator: OperatorProcess
) -> None:
    cluster.apply_yaml(registry("reg", pg_spec(postgres)), namespace)
    cond = cluster.wait_condition(namespace, "reg", "Available", "False", "ConfigurationError")
    assert "db-password" in cond["message"]
    assert cluster.get(DEPLOYMENT, namespace, "reg") is None
    cluster.apply_yaml(password_secret("db-password", postgres.password), namespace)
    cluster.wait_condition(namespace, "reg", "Available", "True", timeout=30)
    cluster.wait_condition(namespace, "reg", "DatabaseAvailable", "True")

    # A wrong key is named too.
    spec = pg_spec(postgres)
    spec["postgres"]["passwordSecret"]["key"] = "nope"
    cluster.apply_yaml(registry("reg", spec), namespace)
    cond = cluster.wait_condition(namespace, "reg", "Available", "False", "ConfigurationError")
    assert "'nope'" in cond["message"]
    assert operator.alive
    assert postgres.password not in operator.text()


def test_secret_change_rolls_the_pod_and_reprobes(
    cluster: Cluster, namespace: str, postgres: PostgresServer, sim_node: SimulatedNode
) -> None:
    cluster.apply_yaml(password_secret("db-password", "wrong-password"), namespace)
    cluster.apply_yaml(registry("reg", pg_spec(postgres)), namespace)
    cond = cluster.wait_condition(namespace, "reg", "DatabaseAvailable", "False", "AuthenticationFailed")
    assert "wrong-password" not in cond["message"]
    assert cluster.wait_condition(namespace, "reg", "Degraded", "True")["reason"] == "DatabaseUnavailable"

    def pod_hash() -> str:
        deployment = cluster.get(DEPLOYMENT, namespace, "reg")
        assert deployment is not None
        value: str = deployment["spec"]["template"]["metadata"]["annotations"][
            "modelregistry.opendatahub.io/config-hash"
        ]
        return value

    before = pod_hash()
    cluster.apply_yaml(password_secret("db-password", postgres.password), namespace)
    wait_for(lambda: pod_hash() != before, timeout=30, what="pod template hash change")
    cluster.wait_condition(namespace, "reg", "DatabaseAvailable", "True", "Connected", timeout=60)
    cluster.wait_condition(namespace, "reg", "Available", "True")


def test_v1alpha1_objects_are_served_and_reconciled(
    cluster: Cluster, namespace: str, postgres: PostgresServer, sim_node: SimulatedNode
) -> None:
    cluster.apply_yaml(password_secret("db-password", postgres.password), namespace)
    spec = pg_spec(postgres)
    spec["grpc"] = {"port": 9090}
    result = cluster.apply_yaml(registry("old", spec, version="v1alpha1"), namespace)
    assert "deprecated" in result.stderr
    cluster.wait_condition(namespace, "old", "Available", "True")
    got = cluster.kubectl(
        "get", "modelregistries.v1alpha1.modelregistry.opendatahub.io", "old", "-n", namespace, "-o", "yaml"
    )
    assert yaml.safe_load(got.stdout)["apiVersion"] == "modelregistry.opendatahub.io/v1alpha1"
    columns = cluster.kubectl("get", "mr", "old", "-n", namespace, "-o", "wide").stdout
    assert "AVAILABLE" in columns
    assert "HOSTS" in columns
    assert f"old.{namespace}.svc.cluster.local" in columns
