"""The secured samples apply with `kubectl apply -k` and reach Available through the simulated node.

They run on an OpenShift-like cluster with Istio and Authorino (stand-in CRDs): the test admits
the Routes as the OpenShift router would and marks the AuthConfig Ready as Authorino would; an
ingress gateway Service stands in the ingress namespace for the Istio gateway Routes. The TLS and
secure-db samples use `make certificates` (hack/certificates.sh) first.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_registry_devcluster.simnode import SimulatedNode

from . import thirdparty
from .conftest import ROOT, OperatorProcess
from .kube import Cluster

pytestmark = pytest.mark.integration

SAMPLES = ROOT / "config" / "samples"
NAME = "modelregistry-sample"
MODE_CONDITION = {
    "kube-rbac-proxy": "KubeRBACProxyAvailable",
    "oauth": "OAuthProxyAvailable",
    "istio": "IstioAvailable",
    "mysql-oauth": "OAuthProxyAvailable",
    "mysql-tls": "IstioAvailable",
}


@pytest.fixture(scope="module")
def mesh(cluster: Cluster, operator: OperatorProcess) -> Iterator[None]:
    thirdparty.install(cluster, *thirdparty.ISTIO, *thirdparty.OPENSHIFT)
    yield
    thirdparty.uninstall(cluster, *thirdparty.ISTIO, *thirdparty.OPENSHIFT)


def certificates(cluster: Cluster, namespace: str, workdir: Path, action: str = "generate") -> None:
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "NAMESPACE": namespace,
        "INGRESS_NAMESPACE": f"{namespace}-ingress",
        "CERTS_DIR": str(workdir / "certs"),
    }
    subprocess.run(["bash", str(ROOT / "hack" / "certificates.sh"), action], env=env, check=True, timeout=120)


@pytest.mark.parametrize(
    "sample",
    [
        "kube-rbac-proxy/mysql",
        "kube-rbac-proxy/postgres",
        "oauth/mysql",
        "oauth/postgres",
        "istio/mysql",
        "istio/postgres",
        "istio/mysql-tls",
        "istio/postgres-tls",
        "secure-db/mysql",
        "secure-db/postgres",
        "secure-db/mysql-oauth",
        "secure-db/mysql-tls",
    ],
)
def test_secured_sample_reaches_available(
    cluster: Cluster, namespace: str, sim_node: SimulatedNode, mesh: None, tmp_path: Path, sample: str
) -> None:
    ingress = f"{namespace}-ingress"
    if sample.startswith("secure-db/") or sample.endswith("-tls"):
        certificates(cluster, namespace, tmp_path)
    try:
        cluster.kubectl("apply", "-n", namespace, "-k", str(SAMPLES / sample))
        mode = sample.split("/")[-1] if sample.startswith("secure-db/") else sample.split("/")[0]
        condition = MODE_CONDITION.get(mode)
        if condition == "IstioAvailable":
            cluster.kubectl("apply", "-f", "-", input=_namespace(ingress))
            cluster.apply_yaml(INGRESS_GATEWAY, ingress)
            thirdparty.ready_auth_config(cluster, namespace, NAME)
            thirdparty.admit_route(cluster, ingress, f"{namespace}-{NAME}-rest")
        elif condition is not None:
            thirdparty.admit_route(cluster, namespace, f"{NAME}-https")
        cluster.wait_condition(namespace, NAME, "Available", "True", "DeploymentAvailable")
        if mode in MODE_CONDITION:
            cluster.wait_condition(namespace, NAME, MODE_CONDITION[mode], "True", "ResourcesAvailable")
        wait = cluster.kubectl("wait", "-n", namespace, "--for=condition=Available", f"mr/{NAME}", "--timeout=10s")
        assert "condition met" in wait.stdout
    finally:
        # The gateway Service must be gone before the next sample looks for a unique one.
        cluster.kubectl("delete", "service", "-n", ingress, "istio-ingressgateway", "--ignore-not-found", check=False)
        cluster.kubectl("delete", "namespace", ingress, "--wait=false", "--ignore-not-found", check=False)


INGRESS_GATEWAY = """
apiVersion: v1
kind: Service
metadata:
  name: istio-ingressgateway
  labels: {istio: ingressgateway}
spec:
  ports:
    - {name: http2, port: 80}
    - {name: https, port: 443}
"""


def _namespace(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
