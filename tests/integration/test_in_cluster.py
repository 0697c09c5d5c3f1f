"""The operator deployed in-cluster, as `make deploy` deploys it, and the core flows through it.

`kubectl apply --server-side -k config/overlays/devcluster` applies config/default (namespace,
CRDs, RBAC, the manager Deployment) with only the image swapped for a `sim-exec` one: the
simulated node runs the operator's console script as the container's process, with the Pod's
env (``HEALTH_PROBE_HOST`` from ``status.podIP``), its ServiceAccount token, CA and namespace at
``/var/run/secrets/kubernetes.io/serviceaccount`` and ``KUBERNETES_SERVICE_HOST`` / ``_PORT``, and
probes its liveness endpoint. So the operator runs on its in-cluster configuration under the
committed ClusterRole: a rule it lacks shows as a 403 in its log.

The cluster is this module's own: the session cluster's operator runs clusterwide as a process
(conftest.py), and two operators on the same registries would fight. Its Pods get the upper half
of ``MRO_POD_NETWORK`` (``second_pod_network``). The tests run in order: deploy, the flows, the
log, undeploy (``make undeploy``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from model_registry_devcluster.operator_image import OPERATOR_IMAGE, provide_operator_image
from model_registry_devcluster.testing import DevCluster, run_dev_cluster, second_pod_network
from model_registry_operator.kinds import PRUNABLE, UNOWNED, Kind
from model_registry_operator.kube import ApiError, lookup
from model_registry_operator.settings import LEADER_ELECTION_ID
from tests.backends.models import model_files, s3_upload
from tests.backends.oci import DistributionRegistry
from tests.backends.process import LOOPBACK
from tests.backends.registry_server import RealRegistryServer, official_client_read, registry_server
from tests.backends.s3 import SeaweedS3
from tests.backends.upload_program import upload_entrypoint
from tests.conftest import fail_without_k8s

from .conftest import ROOT
from .kube import KUBECTL, MR, Cluster, wait_for
from .test_name_conflicts import registry_yaml
from .uploads import BUCKET, UPLOAD_IMAGE, s3_to_oci_spec, secrets, upload, wait_succeeded

pytestmark = pytest.mark.integration

OVERLAY = ROOT / "config" / "overlays" / "devcluster"
SAMPLES = ROOT / "config" / "samples"
OPERATOR_NAMESPACE = "model-registry-operator-system"
OPERATOR_DEPLOYMENT = "model-registry-operator-controller-manager"
OPERATOR_SELECTOR = "control-plane=controller-manager"
CRDS = ("modelregistries.modelregistry.opendatahub.io", "modeluploadjobs.modelregistry.opendatahub.io")
DATABASE_SAMPLES = ("postgres", "mysql", "mariadb", "postgres-auto")
NAME = "modelregistry-sample"
REPLICAS = 2

POD = lookup("v1", "Pod")
# Kinds the operator never touches (not in its table): for the tests to look at.
NAMESPACE = Kind("", "v1", "Namespace", "namespaces", namespaced=False)
SERVICE = lookup("v1", "Service")
CONFIG_MAP = lookup("v1", "ConfigMap")
DEPLOYMENT = lookup("apps/v1", "Deployment")
LEASE = Kind("coordination.k8s.io", "v1", "Lease", "leases")
PDB = Kind("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets")
CRD = lookup("apiextensions.k8s.io/v1", "CustomResourceDefinition")
CLUSTER_ROLE = Kind("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False)
CLUSTER_ROLE_BINDING = lookup("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    """A control plane and simulated node for this module alone (see the module docstring)."""
    fail_without_k8s()
    with run_dev_cluster(tmp_path_factory.mktemp("in-cluster"), pod_network=second_pod_network()) as dev:
        provide_operator_image(dev.node.process_runner)
        dev.node.process_runner.provide_image_entrypoint(UPLOAD_IMAGE, [str(upload_entrypoint())])
        yield dev


@pytest.fixture(scope="module")
def kc(own_cluster: DevCluster) -> Cluster:
    return Cluster(own_cluster.kubeconfig)


def operator_pods(kc: Cluster) -> list[dict[str, Any]]:
    """The Deployment's two replicas (Pods being deleted left out)."""
    pods = [
        p for p in kc.list(POD, OPERATOR_NAMESPACE, OPERATOR_SELECTOR) if not p["metadata"].get("deletionTimestamp")
    ]
    assert len(pods) == REPLICAS, [p["metadata"]["name"] for p in pods]
    return pods


def leader(kc: Cluster) -> str | None:
    """The Pod name holding the leader election Lease (identity ``<hostname>_<uuid>``)."""
    lease = kc.get(LEASE, OPERATOR_NAMESPACE, LEADER_ELECTION_ID)
    holder = str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")
    return holder.rpartition("_")[0] or None


def operator_logs(own_cluster: DevCluster) -> list[Path]:
    """The operator container's log files on the simulated node (one per Pod and start)."""
    return sorted(own_cluster.node.process_runner.log_dir.glob(f"{OPERATOR_NAMESPACE}_*_manager_*.log"))


def log_text(own_cluster: DevCluster) -> str:
    return "".join(path.read_text(errors="replace") for path in operator_logs(own_cluster))


FORBIDDEN = re.compile(r"\b403\b|Forbidden|forbidden")


def assert_clean_log(own_cluster: DevCluster) -> None:
    """No API request refused (a rule missing from the ClusterRole) and no traceback."""
    text = log_text(own_cluster)
    denied = [line for line in text.splitlines() if FORBIDDEN.search(line)]
    assert denied == [], "\n".join(denied[:20])
    assert "Traceback" not in text, text[-6000:]


def healthz(address: str) -> int:
    """The HTTP status of the operator's liveness endpoint at ``address`` (0: nothing answers)."""
    try:
        with urllib.request.urlopen(f"http://{address}:8081/healthz", timeout=2) as response:  # noqa: S310
            status: int = response.status
            return status
    except OSError:
        return 0


def wait_healthy(address: str) -> None:
    wait_for(lambda: healthz(address) == 200, 60, what=f"the operator's /healthz on its Pod IP {address}")


def test_the_overlay_only_swaps_the_image() -> None:
    """What the tests below deploy is config/default as `make deploy` applies it, but the image."""

    def kustomize(directory: Path) -> str:
        return subprocess.run(
            [str(KUBECTL), "kustomize", str(directory)], capture_output=True, text=True, check=True, timeout=60
        ).stdout

    base, overlay = kustomize(ROOT / "config" / "default"), kustomize(OVERLAY)
    assert base.count("image: quay.io/opendatahub/model-registry-operator:latest") == 1
    assert base.replace("quay.io/opendatahub/model-registry-operator:latest", f"{OPERATOR_IMAGE}:dev") == overlay


@pytest.fixture(scope="module")
def deployed(own_cluster: DevCluster, kc: Cluster) -> dict[str, Any]:
    """config/default applied through the overlay; the leader's Pod once both replicas answer
    their liveness endpoint and one holds the Lease."""
    kc.kubectl("apply", "--server-side", "-k", str(OVERLAY))
    for crd in CRDS:
        kc.wait_established(f"crd/{crd}")
    kc.kubectl("rollout", "status", "-n", OPERATOR_NAMESPACE, f"deployment/{OPERATOR_DEPLOYMENT}", "--timeout=120s")
    pods = wait_for(lambda: all(p.get("status", {}).get("podIP") for p in operator_pods(kc)) and operator_pods(kc), 30)
    try:
        for pod in pods:
            wait_healthy(pod["status"]["podIP"])
        holder = wait_for(lambda: leader(kc), 60, what="a replica holding the leader election Lease")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\noperator log:\n{log_text(own_cluster)[-4000:]}") from None
    (pod,) = [p for p in pods if p["metadata"]["name"] == holder]
    return pod


def test_operator_runs_in_its_pod_on_the_in_cluster_configuration(
    own_cluster: DevCluster, kc: Cluster, deployed: dict[str, Any]
) -> None:
    deployment = kc.get(DEPLOYMENT, OPERATOR_NAMESPACE, OPERATOR_DEPLOYMENT)
    assert deployment is not None
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == f"{OPERATOR_IMAGE}:dev"
    assert spec["serviceAccountName"] == "model-registry-operator-controller-manager"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health", "scheme": "HTTP"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health", "scheme": "HTTP"}
    assert "--leader-elect" in container["args"]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["HEALTH_PROBE_HOST"]["value"] == "$(POD_IP)"
    budget = kc.get(PDB, OPERATOR_NAMESPACE, OPERATOR_DEPLOYMENT)
    assert budget is not None
    assert budget["spec"]["minAvailable"] == 1
    assert "KUBECONFIG" not in env
    # /healthz answered on the Pod's own address (the fixture), one of this cluster's pod network.
    assert ipaddress.ip_address(deployed["status"]["podIP"]) in ipaddress.ip_network(second_pod_network())
    # Both replicas ready (a standby is too, so rollouts do not stall), neither restarted.
    for pod in operator_pods(kc):
        (container_status,) = pod["status"]["containerStatuses"]
        assert container_status["ready"], pod["metadata"]["name"]
        assert container_status["restartCount"] == 0, pod["metadata"]["name"]
    # One of them leads (its hostname, the Pod's name, is the Lease holder's identity).
    assert leader(kc) == deployed["metadata"]["name"]
    assert operator_logs(own_cluster), "no log of the operator's process on the node"


def apply_sample(kc: Cluster, sample: str) -> str:
    namespace = f"sample-{sample}"
    kc.create_namespace(namespace)
    kc.kubectl("apply", "-n", namespace, "-k", str(SAMPLES / sample))
    kc.wait_condition(namespace, NAME, "Available", "True", "DeploymentAvailable", timeout=120)
    return namespace


def test_every_database_sample_reaches_available(kc: Cluster, deployed: dict[str, Any]) -> None:
    with ThreadPoolExecutor(len(DATABASE_SAMPLES)) as pool:
        namespaces = list(pool.map(lambda sample: apply_sample(kc, sample), DATABASE_SAMPLES))
    for namespace in namespaces:
        wait = kc.kubectl("wait", "-n", namespace, "--for=condition=Available", f"mr/{NAME}", "--timeout=10s")
        assert "condition met" in wait.stdout
        assert kc.condition(namespace, NAME, "DatabaseAvailable") is not None


@pytest.fixture(scope="module")
def mr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRegistryServer]:
    with registry_server(tmp_path_factory.mktemp("model-registry")) as server:
        yield server


def test_model_upload_job_succeeds(
    kc: Cluster,
    deployed: dict[str, Any],
    s3: SeaweedS3,
    oci: DistributionRegistry,
    base_image: str,
    mr: RealRegistryServer,
) -> None:
    namespace = "uploads"
    kc.create_namespace(namespace)
    files = model_files(big=256 * 1024)
    s3_upload(s3, BUCKET, "in-cluster/mnist", files)
    kc.apply_yaml(secrets(namespace, s3.endpoint, oci.host), namespace)
    registry = {"address": f"http://{LOOPBACK}", "port": mr.port, "isSecure": False, "author": "in-cluster"}
    spec = s3_to_oci_spec(registry, oci.host, base_image, "in-cluster/mnist", "in-cluster/mnist", {"name": "mnist"})
    kc.apply_yaml(upload("mnist", spec), namespace)
    status = wait_succeeded(kc, namespace, "mnist", timeout=180)["mnist"]
    assert status["artifactURI"] == f"oci://{oci.host}/in-cluster/mnist:v1"
    assert status["files"] == len(files)
    back = official_client_read(mr.url, "mnist", "v1")
    assert back["artifact"]["id"] == status["modelArtifactId"]
    assert back["artifact"]["state"] == "LIVE"
    kc.kubectl("delete", "-n", namespace, "muj/mnist", "--wait=true", "--timeout=60s")
    # The garbage collector removes what the upload owned, the Job with its Pods.
    wait_for(lambda: kc.list(lookup("batch/v1", "Job"), namespace) == [], 60, what="the upload Job collected")


def registry(name: str, **mode: Any) -> str:
    return registry_yaml(name, mode)


def labelled(kc: Cluster, namespace: str, name: str) -> list[str]:
    """Every object of a kind the operator may create, here or cluster-wide, labelled as the registry's."""
    selector = f"modelregistry.opendatahub.io/registry={name}"
    found = []
    for kinds, where in ((PRUNABLE, namespace), (UNOWNED, None)):
        for kind in kinds:
            try:
                found += [f"{kind.kind}/{o['metadata']['name']}" for o in kc.list(kind, where, selector)]
            except ApiError as exc:
                if not exc.not_found:  # an optional API (Routes, Istio, ...) not served here
                    raise
    return found


def containers(kc: Cluster, namespace: str, name: str) -> list[str]:
    deployment = kc.get(DEPLOYMENT, namespace, name)
    return [
        c["name"]
        for c in ((deployment or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [])
    ]


def service_ports(kc: Cluster, namespace: str, name: str) -> list[str]:
    return [p["name"] for p in (kc.get(SERVICE, namespace, name) or {}).get("spec", {}).get("ports") or []]


def test_mode_switch_and_deletion_leave_nothing_behind(kc: Cluster, deployed: dict[str, Any]) -> None:
    namespace, name = "modes", "switching"
    kc.create_namespace(namespace)
    kc.apply_yaml(registry(name), namespace)
    kc.wait_condition(namespace, name, "Available", "True", timeout=120)
    plain = set(labelled(kc, namespace, name))

    kc.apply_yaml(registry(name, kubeRBACProxy={}), namespace)
    wait_for(lambda: containers(kc, namespace, name) == ["rest-container", "kube-rbac-proxy"], 60, what="sidecar")
    binding = wait_for(lambda: kc.get(CLUSTER_ROLE_BINDING, None, f"{name}-auth-delegator"), 60, what="binding")
    assert binding["roleRef"]["name"] == "system:auth-delegator"
    assert kc.get(CONFIG_MAP, namespace, f"{name}-kube-rbac-proxy-config") is not None
    wait_for(lambda: service_ports(kc, namespace, name) == ["https-api"], 60, what="the proxy's Service port")

    kc.apply_yaml(registry(name), namespace)
    wait_for(lambda: containers(kc, namespace, name) == ["rest-container"], 60, what="no sidecar")
    wait_for(lambda: kc.get(CLUSTER_ROLE_BINDING, None, f"{name}-auth-delegator") is None, 60, what="binding pruned")
    wait_for(lambda: set(labelled(kc, namespace, name)) == plain, 60, what="only the plain mode's objects")
    kc.wait_condition(namespace, name, "Available", "True", timeout=120)
    assert kc.condition(namespace, name, "KubeRBACProxyAvailable") is None

    kc.apply_yaml(registry(name, kubeRBACProxy={}), namespace)
    wait_for(lambda: kc.get(CLUSTER_ROLE_BINDING, None, f"{name}-auth-delegator"), 60, what="binding again")
    kc.kubectl("delete", "-n", namespace, f"mr/{name}", "--wait=true", "--timeout=60s")
    assert kc.get(CLUSTER_ROLE_BINDING, None, f"{name}-auth-delegator") is None
    wait_for(lambda: labelled(kc, namespace, name) == [], 60, what="every object of the registry to be collected")


def test_operator_log_has_no_403_and_no_traceback(
    own_cluster: DevCluster, kc: Cluster, deployed: dict[str, Any]
) -> None:
    assert_clean_log(own_cluster)
    assert all(p["status"]["containerStatuses"][0]["restartCount"] == 0 for p in operator_pods(kc))


def test_make_undeploy_removes_the_registries_then_the_operator(
    own_cluster: DevCluster, kc: Cluster, deployed: dict[str, Any]
) -> None:
    finalizer_owned = [f"sample-{sample}" for sample in DATABASE_SAMPLES]
    assert all(kc.get(MR, namespace, NAME) for namespace in finalizer_owned)
    make("undeploy", own_cluster)
    # Registries went first, through the operator (their finalizer removed), then everything else.
    assert all(kc.get(MR, namespace, NAME) is None for namespace in finalizer_owned)
    assert all(kc.get(CRD, None, crd) is None for crd in CRDS)
    assert kc.get(CLUSTER_ROLE, None, "model-registry-operator-manager-role") is None
    assert kc.get(CLUSTER_ROLE_BINDING, None, "model-registry-operator-manager-rolebinding") is None
    wait_for(lambda: kc.get(NAMESPACE, None, OPERATOR_NAMESPACE) is None, 60, what="the operator's namespace gone")
    assert not [log for log in operator_logs(own_cluster) if _running(log)]
    # The operator stopped before its RBAC went: nothing refused while it handled the last events.
    assert_clean_log(own_cluster)


def _running(log: Path) -> bool:
    """Whether a process still writes ``log`` (its open file descriptors, from /proc)."""
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == str(log) for fd in fd_dir.iterdir()):
                return True
        except OSError:
            continue
    return False


def make(target: str, own_cluster: DevCluster, **variables: str) -> None:
    """``make <target>`` against this module's cluster (``KUBECTL`` carries the kubeconfig)."""
    env = {**os.environ, "KUBECTL": f"{KUBECTL} --kubeconfig {own_cluster.kubeconfig}"}
    settings = [f"{key}={value}" for key, value in variables.items()]
    result = subprocess.run(
        ["make", "-s", target, *settings], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_deploy_with_an_image_override(own_cluster: DevCluster, kc: Cluster) -> None:
    """`make deploy IMG=... UPLOAD_IMG=...` on a cluster (this one, after the undeploy above): the
    images set without editing the tree, the rollout waited for; `make undeploy` again."""
    before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True)
    make("deploy", own_cluster, IMG=f"{OPERATOR_IMAGE}:make-deploy", UPLOAD_IMG=UPLOAD_IMAGE)
    deployment = kc.get(DEPLOYMENT, OPERATOR_NAMESPACE, OPERATOR_DEPLOYMENT)
    assert deployment is not None
    assert deployment["status"].get("availableReplicas") == REPLICAS
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{OPERATOR_IMAGE}:make-deploy"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RELATED_IMAGE_MODEL_UPLOAD_JOB_IMAGE"] == UPLOAD_IMAGE
    for pod in operator_pods(kc):
        wait_healthy(pod["status"]["podIP"])
    after = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert after.stdout == before.stdout
    make("undeploy", own_cluster)
    wait_for(lambda: kc.get(NAMESPACE, None, OPERATOR_NAMESPACE) is None, 60, what="the operator's namespace gone")
    assert_clean_log(own_cluster)
