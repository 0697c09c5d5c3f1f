"""Invalid specs: rejected by the API server (CEL / schema) or reported on a condition naming the field."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from model_registry_devcluster.simnode import SimulatedNode

from .conftest import OperatorProcess
from .kube import Cluster

pytestmark = pytest.mark.integration

PG = {"host": "db.example", "database": "d", "username": "u"}


def mr(name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "modelregistry.opendatahub.io/v1beta1",
            "kind": "ModelRegistry",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"rest": {}}, "exactly one of postgres or mysql must be set"),
        (
            {"rest": {}, "postgres": PG, "mysql": {"host": "h", "database": "d", "username": "u"}},
            "exactly one of postgres or mysql must be set",
        ),
        ({"rest": {"port": 0}, "postgres": PG}, "spec.rest.port"),
        ({"rest": {}, "postgres": {**PG, "sslMode": "sometimes"}}, "spec.postgres.sslMode"),
        (
            {"rest": {}, "postgres": {**PG, "sslCertificateSecret": {"name": "c", "key": "tls.crt"}}},
            "sslCertificateSecret and sslKeySecret MUST be set together",
        ),
        (
            {"rest": {}, "postgres": {"database": "d", "username": "u"}},
            "GenerateDeployment must be set to true if host/hostAddress are not provided",
        ),
        ({"rest": {}, "postgres": {"host": "h", "database": "d"}}, "Username must be set if database is specified"),
        (
            {"rest": {}, "postgres": {"generateDeployment": True, "host": "h"}},
            "host and hostAddress must not be set when generateDeployment is true",
        ),
        (
            {"rest": {}, "postgres": PG, "kubeRBACProxy": {}, "oauthProxy": {}},
            "at most one of oauthProxy, kubeRBACProxy and istio may be set",
        ),
        (
            {"rest": {}, "postgres": PG, "kubeRBACProxy": {"tlsCertificateSecret": {"name": "a", "key": "b"}}},
            "tlsCertificateSecret and tlsKeySecret MUST be set together",
        ),
        ({"postgres": PG}, "spec.rest: Required value"),
        ({"rest": {}, "mysql": {"host": "h", "database": "d"}}, "spec.mysql.username: Required value"),
    ],
)
def test_the_api_server_rejects_invalid_specs(
    cluster: Cluster, namespace: str, spec: dict[str, Any], message: str
) -> None:
    result = cluster.apply_yaml(mr("bad", spec), namespace, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_invalid_stored_spec_gets_a_condition_and_the_operator_keeps_working(
    cluster: Cluster, namespace: str, operator: OperatorProcess, sim_node: SimulatedNode, tmp_path: Any
) -> None:
    # A CRD without the CEL rules (as an older install would have) lets a bad object in; the
    # reconcile's own check then names the field. Simulated by removing the rules from a copy.
    cluster.apply_yaml(mr("good-before", {"rest": {}, "postgres": {"generateDeployment": True}}), namespace)
    cluster.wait_condition(namespace, "good-before", "Available", "True")

    crd = yaml.safe_load(
        cluster.kubectl("get", "crd", "modelregistries.modelregistry.opendatahub.io", "-o", "yaml").stdout
    )
    original = yaml.safe_dump(crd)
    for version in crd["spec"]["versions"]:
        version["schema"]["openAPIV3Schema"]["properties"]["spec"].pop("x-kubernetes-validations", None)
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        crd["metadata"].pop(key, None)
    crd.pop("status", None)
    try:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(crd))
        cluster.apply_yaml(mr("no-db", {"rest": {}}), namespace)
    finally:
        restored = yaml.safe_load(original)
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            restored["metadata"].pop(key, None)
        restored.pop("status", None)
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(restored))
    cond = cluster.wait_condition(namespace, "no-db", "Available", "False", "ConfigurationError")
    assert "spec.postgres" in cond["message"]
    assert "exactly one of postgres or mysql" in cond["message"]
    assert cluster.condition(namespace, "no-db", "Degraded")["reason"] == "ConfigurationError"  # type: ignore[index]

    # Still reconciling everything else.
    assert operator.alive
    cluster.apply_yaml(mr("good-after", {"rest": {}, "postgres": {"generateDeployment": True}}), namespace)
    cluster.wait_condition(namespace, "good-after", "Available", "True")
    assert operator.alive


def test_security_mode_without_its_apis_is_reported(cluster: Cluster, namespace: str, sim_node: SimulatedNode) -> None:
    spec = {"rest": {}, "postgres": {"generateDeployment": True}, "istio": {"authProvider": "authorino"}}
    cluster.apply_yaml(mr("mesh", spec), namespace)
    cond = cluster.wait_condition(namespace, "mesh", "IstioAvailable", "False", "MissingAPI")
    for group in ("networking.istio.io", "security.istio.io", "authorino.kuadrant.io"):
        assert group in cond["message"]
    cluster.wait_condition(namespace, "mesh", "Available", "False", "ResourcesUnavailable")
    assert cluster.condition(namespace, "mesh", "Degraded")["reason"] == "MissingAPI"  # type: ignore[index]
