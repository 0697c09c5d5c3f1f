"""The operator under nothing but the generated ClusterRole (config/rbac/role.yaml): the core flows
work and the API server refuses it nothing; each rule taken away breaks the flow that needs it,
visibly (reason ``Forbidden`` naming the verb and resource, or the log), and putting it back heals.

The operator runs as a process, as in the other integration tests, but authenticated as a
ServiceAccount bound only to that role (tests/integration/rbac_operator.py). The session's
operator (cluster-admin) is stopped meanwhile, so only this one reconciles.

About 3 minutes in all (``make test-rbac`` runs this file alone).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_registry_devcluster.controlplane import ControlPlane
from model_registry_devcluster.simnode import SimulatedNode
from model_registry_operator import kinds, rbac
from model_registry_operator.kube import lookup
from tests.backends.models import model_files, s3_upload
from tests.backends.oci import DistributionRegistry
from tests.backends.process import LOOPBACK
from tests.backends.registry_server import RealRegistryServer, registry_server
from tests.backends.s3 import SeaweedS3
from tests.unit.test_rbac_manifests import AUTH_DELEGATOR, BOOTSTRAP_CLUSTER_ROLES

from .conftest import ROOT, OperatorProcess
from .kube import MR, Cluster, wait_for
from .rbac_operator import LeastPrivilegeOperator
from .uploads import BUCKET, MUJ, s3_to_oci_spec, secrets, upload, upload_status, wait_succeeded

pytestmark = pytest.mark.integration

SAMPLES = ROOT / "config" / "samples"
SAMPLE = "modelregistry-sample"
CRB = lookup("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
DEPLOYMENT = lookup("apps/v1", "Deployment")
ROLE = lookup("rbac.authorization.k8s.io/v1", "Role")
EVENT = lookup("v1", "Event")
# A closed loopback port: the database probe answers at once, the registry still comes up.
QUICK_DB = {"host": "127.0.0.1", "port": 1, "database": "d", "username": "u"}


@pytest.fixture(scope="module")
def lp(
    cluster: Cluster,
    control_plane: ControlPlane,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LeastPrivilegeOperator]:
    operator.stop()
    least = None
    try:
        least = LeastPrivilegeOperator(cluster, control_plane, tmp_path_factory.mktemp("rbac-operator"))
        yield least
    finally:
        if least is not None:
            least.close()
        operator.start(tmp_path_factory.mktemp("operator"))


@pytest.fixture
def ns(cluster: Cluster, lp: LeastPrivilegeOperator, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"rbac-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(name)
    yield name
    cluster.kubectl("delete", "modelregistries", "--all", "-n", name, "--wait=true", "--timeout=60s", check=False)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(f"--- operator log tail ---\n{lp.process.tail(120)}")


def registry(name: str, **spec: Any) -> str:
    doc = {
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": name},
        "spec": {"rest": {}, "postgres": QUICK_DB, **spec},
    }
    return yaml.safe_dump(doc)


def assert_no_forbidden(lp: LeastPrivilegeOperator, offset: int) -> None:
    lines = lp.forbidden_lines(offset)
    assert not lines, "the API server refused the operator:\n" + "\n".join(lines[:20])


def delete_and_wait(cluster: Cluster, namespace: str, name: str) -> None:
    cluster.kubectl("delete", "mr", "-n", namespace, name, "--wait=true", "--timeout=60s")
    assert cluster.get(MR, namespace, name) is None


# -- (a) the core flows, nothing refused ----------------------------------------------------
def test_the_bootstrap_role_it_binds_grants_what_the_unit_test_assumes(cluster: Cluster) -> None:
    """The unit test's escalation check uses this API server's system:auth-delegator rules."""
    live = cluster.kube.request_sync("GET", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{AUTH_DELEGATOR}")
    assert sorted(json.dumps(r, sort_keys=True) for r in live["rules"]) == sorted(
        json.dumps(r, sort_keys=True) for r in BOOTSTRAP_CLUSTER_ROLES[AUTH_DELEGATOR]
    )


@pytest.mark.parametrize("sample", ["postgres", "mysql", "mariadb", "postgres-auto"])
def test_every_database_sample_reaches_available_and_is_deleted(
    cluster: Cluster, ns: str, sim_node: SimulatedNode, lp: LeastPrivilegeOperator, sample: str
) -> None:
    offset = lp.log_offset()
    cluster.kubectl("apply", "-n", ns, "-k", str(SAMPLES / sample))
    cluster.wait_condition(ns, SAMPLE, "Available", "True", "DeploymentAvailable", timeout=120)
    delete_and_wait(cluster, ns, SAMPLE)
    wait_for(lambda: cluster.get(DEPLOYMENT, ns, SAMPLE) is None or None, timeout=30, what="Deployment collected")
    assert_no_forbidden(lp, offset)


def test_a_kube_rbac_proxy_registry_binds_auth_delegator_without_bind_and_cleans_up(
    cluster: Cluster, ns: str, sim_node: SimulatedNode, lp: LeastPrivilegeOperator
) -> None:
    offset = lp.log_offset()
    cluster.kubectl("apply", "-n", ns, "-k", str(SAMPLES / "kube-rbac-proxy" / "postgres"))
    cluster.wait_condition(ns, SAMPLE, "Available", "True", "DeploymentAvailable", timeout=120)
    cluster.wait_condition(ns, SAMPLE, "KubeRBACProxyAvailable", "True", "ResourcesAvailable")
    binding = cluster.get(CRB, None, f"{SAMPLE}-auth-delegator")
    assert binding is not None
    assert binding["roleRef"]["name"] == AUTH_DELEGATOR
    assert cluster.get(ROLE, ns, f"registry-user-{SAMPLE}") is not None
    delete_and_wait(cluster, ns, SAMPLE)
    assert cluster.get(CRB, None, f"{SAMPLE}-auth-delegator") is None  # the finalizer's
    assert_no_forbidden(lp, offset)


@pytest.fixture(scope="module")
def mr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRegistryServer]:
    with registry_server(tmp_path_factory.mktemp("model-registry")) as server:
        yield server


def upload_spec(mr: RealRegistryServer, oci: DistributionRegistry, base_image: str, ns: str, name: str) -> str:
    address = {"address": f"http://{LOOPBACK}", "port": mr.port, "isSecure": False, "author": "rbac-tests"}
    spec = s3_to_oci_spec(address, oci.host, base_image, f"{ns}/{name}", f"{ns}/{name}", {"name": f"{ns}-{name}"})
    return upload(name, spec)


def test_a_model_upload_job_succeeds(
    cluster: Cluster,
    ns: str,
    sim_node: SimulatedNode,
    lp: LeastPrivilegeOperator,
    s3: SeaweedS3,
    oci: DistributionRegistry,
    base_image: str,
    mr: RealRegistryServer,
) -> None:
    offset = lp.log_offset()
    s3_upload(s3, BUCKET, f"{ns}/m", model_files(big=64 * 1024))
    cluster.apply_yaml(secrets(ns, s3.endpoint, oci.host), ns)
    cluster.apply_yaml(upload_spec(mr, oci, base_image, ns, "m"), ns)
    status = wait_succeeded(cluster, ns, "m")["m"]
    assert status["progress"]["stage"] == "Completed"  # the Pod wrote it through the Role the operator made
    cluster.kubectl("delete", "modeluploadjob", "-n", ns, "m", "--wait=true", "--timeout=60s")
    assert_no_forbidden(lp, offset)


# -- (b) each rule taken away -----------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """What breaks without a rule, and how the user sees it."""

    flow: str  # "registry" | "proxy" (kube-rbac-proxy registry) | "upload" | "restart" (then a registry)
    sees: str  # "condition": Available=False, reason Forbidden, naming the resource; "log": the log names it
    named: tuple[str, ...] = ()  # words the condition or the log must name (default: the rule's resources)


CASES: dict[str, Case] = {
    # keyed by the rule's first resource
    "modelregistries": Case("registry", "log"),
    "modelregistries/status": Case("registry", "log"),
    "serviceaccounts": Case("registry", "condition"),
    "pods": Case("registry", "condition"),
    "events": Case("registry", "log"),
    "deployments": Case("registry", "condition"),
    # The upload's status cannot say it: reporting a failure looks up the Job first.
    "jobs": Case("upload", "log"),
    "endpointslices": Case("registry", "condition"),
    "networkpolicies": Case("registry", "condition"),
    "roles": Case("proxy", "condition"),
    # Discovery lists CRDs at start-up; a running watch keeps what it was allowed when it began.
    "customresourcedefinitions": Case("restart", "log"),
    "tokenreviews": Case("proxy", "condition", ("tokenreviews",)),
    "subjectaccessreviews": Case("proxy", "condition", ("subjectaccessreviews",)),
    "endpoints": Case("registry", "condition", ("endpoints",)),
}
NOT_EXERCISED = {
    "modelregistries/finalizers": "checked only by the OwnerReferencesPermissionEnforcement admission plugin "
    "(OpenShift), which the local control plane does not enable",
    "validatingwebhookconfigurations": "used only with ENABLE_WEBHOOKS (the operator's own webhook certificate); "
    "tests/integration/test_in_cluster.py deploys config/default with them under this role and finds no 403",
    "mutatingwebhookconfigurations": "as validatingwebhookconfigurations",
}
"""Rules the local control plane cannot show a need for, and why (besides the optional APIs')."""


def sweep_rules() -> list[dict[str, Any]]:
    return [r.as_dict() for r in rbac.cluster_role_rules() if r.resources[0] in CASES]


def test_every_rule_is_swept_or_says_why_not() -> None:
    """A rule added to the table gets a case here (or a reason), so the sweep keeps proving them all."""
    optional = {group for group in kinds.CAPABILITY}
    for rule in rbac.cluster_role_rules():
        first = rule.resources[0]
        assert first in CASES or first in NOT_EXERCISED or set(rule.api_groups) <= optional, rule


def _breaks(
    cluster: Cluster, lp: LeastPrivilegeOperator, ns: str, case: Case, named: tuple[str, ...], start: Callable[[], str]
) -> str:
    """Start the flow without the rule; what the user sees, once they see it."""
    offset = 0 if case.flow == "restart" else lp.log_offset()
    name = start()

    def seen() -> str | None:
        if case.sees == "condition":
            cond = (
                cluster.condition(ns, name, "Available")
                if case.flow != "upload"
                else next(
                    (c for c in upload_status(cluster, ns, name).get("conditions") or [] if c["reason"] == "Forbidden"),
                    None,
                )
            )
            if cond and cond["reason"] == "Forbidden" and any(n in cond["message"] for n in named):
                return str(cond["message"])
            return None
        lines = [line for line in lp.forbidden_lines(offset) if any(n in line for n in named)]
        return lines[0] if lines else None

    return wait_for(seen, timeout=60, interval=0.5, what=f"the failure naming {named}")


@pytest.mark.parametrize("rule", sweep_rules(), ids=lambda r: ",".join(r["resources"]))
def test_without_the_rule_its_flow_fails_visibly_and_recovers(
    cluster: Cluster,
    ns: str,
    sim_node: SimulatedNode,
    lp: LeastPrivilegeOperator,
    rule: dict[str, Any],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    case = CASES[rule["resources"][0]]
    named = case.named or tuple(r.split("/")[0] for r in rule["resources"])
    if case.flow == "upload":
        mr = request.getfixturevalue("mr")
        s3, oci = request.getfixturevalue("s3"), request.getfixturevalue("oci")
        base_image = request.getfixturevalue("base_image")
        s3_upload(s3, BUCKET, f"{ns}/m", model_files(big=1024))
        cluster.apply_yaml(secrets(ns, s3.endpoint, oci.host), ns)

        def start() -> str:
            cluster.apply_yaml(upload_spec(mr, oci, base_image, ns, "m"), ns)
            return "m"
    elif case.flow == "restart":
        workdir = tmp_path / "restarted"
        workdir.mkdir()

        def start() -> str:
            # The operator's start waits for its liveness, which comes after discovery: in a thread.
            lp.process.stop()
            restarting.append(threading.Thread(target=lp.process.start, args=(workdir,)))
            restarting[0].start()
            wait_for(
                lambda: lp.process.log_path.parent == workdir and not lp.process.log.closed,
                timeout=10,
                what="the operator restarted",
            )
            return "r"
    else:
        extra: dict[str, Any] = {"kubeRBACProxy": {}} if case.flow == "proxy" else {}

        def start() -> str:
            cluster.apply_yaml(registry("r", **extra), ns)
            return "r"

    restarting: list[threading.Thread] = []
    with lp.without(rule):
        evidence = _breaks(cluster, lp, ns, case, named, start)
    for thread in restarting:
        thread.join(90)
        assert lp.process.alive, lp.process.tail()
    if case.flow == "restart":
        cluster.apply_yaml(registry("r"), ns)
    verbs = "|".join(rule["verbs"])
    assert any(v in evidence for v in rule["verbs"]) or case.named, f"{evidence!r} names none of {verbs}"
    # Recovery, with the rule back.
    if case.flow == "upload":
        wait_succeeded(cluster, ns, "m", timeout=180)
        assert cluster.get(MUJ, ns, "m") is not None
    else:
        cluster.wait_condition(ns, "r", "Available", "True", "DeploymentAvailable", timeout=120)
