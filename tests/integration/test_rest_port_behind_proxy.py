"""The REST port cannot be reached around the proxy: the real registry server, connected to at its pod address.

Issue example "Around the proxy": behind kube-rbac-proxy the REST server listened on
``0.0.0.0:<rest.port>``, so any pod reached ``podIP:<rest.port>`` without a token. Now:

* the simulated node runs the registry container as the real ``model-registry`` server (as in
  the flagship test), with the rendered ``--hostname=127.0.0.1`` and a read-only root filesystem
  (enforced by the node), and the ``kube-rbac-proxy`` container as a stand-in that does what
  kube-rbac-proxy does with the rendered arguments against the real API server
  (:mod:`.kube_rbac_proxy_standin`: TokenReview, SubjectAccessReview, ``--ignore-paths``), with
  the ServiceAccount token of the projected volume only that container mounts;
* the Pod becomes Ready only through the registry's startup / readiness probes, which now go
  through the proxy's port;
* a connection to ``podIP:<rest.port>`` is refused, while ``podIP:<proxy port>`` answers: the
  health paths without a token, the API with 401 without one, 403 for a ServiceAccount without
  ``get`` on the Service, 200 for one bound to ``registry-user-<name>``.

On the simulated node every pod shares the host's network, so "loopback" is the node's
127.0.0.1, not a per-pod one, and a server bound to ``0.0.0.0`` answers on every pod address:
the control case (no proxy, ``--hostname=0.0.0.0``) shows the same connection answering, so the
refusal above is the binding's doing, as it would be in a pod's own network namespace.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from model_registry_devcluster.simnode import SimulatedNode
from tests.backends.certs import CertificateAuthority
from tests.backends.databases import PostgresServer
from tests.backends.registry_server import API

from .kube import Cluster
from .served_registry import REGISTRY_IMAGE, host_free_port, manifests, registry_pod

pytestmark = pytest.mark.integration

NAME = "guarded"
PROXY_IMAGE = "localhost/sim-exec/kube-rbac-proxy:standin"
PROXY_BINARY = "/usr/local/bin/kube-rbac-proxy"
STANDIN = Path(__file__).with_name("kube_rbac_proxy_standin.py")
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="module")
def database() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def images(sim_node: SimulatedNode, registry_binary: Path, tmp_path: Path) -> None:
    """The registry image holds the real server; the proxy image the stand-in, as its entrypoint."""
    wrapper = tmp_path / "kube-rbac-proxy"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {STANDIN} "$@"\n')
    wrapper.chmod(0o755)
    runner = sim_node.process_runner
    runner.provide_image_files(REGISTRY_IMAGE, {"/model-registry": registry_binary})
    runner.provide_image_files(PROXY_IMAGE, {PROXY_BINARY: wrapper})
    runner.provide_image_entrypoint(PROXY_IMAGE, [PROXY_BINARY])


def registry_docs(namespace: str, port: int, db: PostgresServer, proxy: dict[str, Any] | None) -> str:
    docs = list(yaml.safe_load_all(manifests(namespace, NAME, port, db)))
    if proxy is not None:
        docs[-1]["spec"]["kubeRBACProxy"] = proxy
    return yaml.safe_dump_all(docs)


def tls_secret(namespace: str, ca: CertificateAuthority) -> str:
    pair = ca.issue_server(NAME, dns_names=[NAME, f"{NAME}.{namespace}.svc"], ip_addresses=["127.0.0.1"])
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": f"{NAME}-kube-rbac-proxy", "namespace": namespace},
        "stringData": {"tls.crt": pair.cert_pem, "tls.key": pair.key_pem},
    }
    return yaml.safe_dump(secret)


def refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def https_get(host: str, port: int, path: str, ca: CertificateAuthority, token: str | None = None) -> tuple[int, str]:
    context = ssl.create_default_context(cadata=ca.cert_pem)
    context.check_hostname = False  # connected to by pod address; the chain is still verified
    conn = http.client.HTTPSConnection(host, port, timeout=15, context=context)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        answer = conn.getresponse()
        return answer.status, answer.read().decode(errors="replace")
    finally:
        conn.close()


def token_of(cluster: Cluster, namespace: str, account: str) -> str:
    cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    return cluster.kubectl("create", "token", account, "-n", namespace).stdout.strip()


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in pod["spec"]["containers"] if c["name"] == name)
    return found


def test_around_the_proxy_the_rest_port_refuses_connections_to_the_pod_address(
    cluster: Cluster, namespace: str, images: None, database: PostgresServer
) -> None:
    ca = CertificateAuthority()
    rest_port, proxy_port = host_free_port(), host_free_port()
    proxy = {"image": PROXY_IMAGE, "port": proxy_port, "serviceRoute": "disabled"}
    cluster.apply_yaml(tls_secret(namespace, ca), namespace)
    cluster.apply_yaml(registry_docs(namespace, rest_port, database, proxy), namespace)

    # Ready through the probes, which reach the server through the proxy only.
    cluster.wait_condition(namespace, NAME, "Available", "True", timeout=180)
    assert (cluster.condition(namespace, NAME, "KubeRBACProxyAvailable") or {}).get("status") == "True"
    pod = registry_pod(cluster, namespace, NAME)
    pod_ip = pod["status"]["podIP"]
    rest, sidecar = container(pod, "rest-container"), container(pod, "kube-rbac-proxy")
    assert rest["args"][:2] == ["--hostname=127.0.0.1", f"--port={rest_port}"]
    assert rest["readinessProbe"]["httpGet"] == {"path": "/readyz/health", "port": proxy_port, "scheme": "HTTPS"}
    assert rest["securityContext"]["readOnlyRootFilesystem"] is True
    # The token (which the API server's admission leaves out) is the proxy's only.
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert not [m for m in rest.get("volumeMounts", []) if m["mountPath"].startswith("/var/run/secrets")]
    assert [m["mountPath"] for m in sidecar["volumeMounts"] if m["mountPath"].startswith("/var/run/secrets")] == [
        SA_DIR
    ]

    # Around the proxy: nothing listens on the pod address at the REST port.
    assert refused(pod_ip, rest_port), f"{pod_ip}:{rest_port} accepted a connection"
    # Through the proxy: health paths open, the API only with a token allowed to get the Service.
    assert https_get(pod_ip, proxy_port, "/readyz/health", ca)[0] == 200
    assert https_get(pod_ip, proxy_port, "/readyz/isDirty", ca)[0] == 200
    api_path = f"{API}/registered_models"
    assert https_get(pod_ip, proxy_port, api_path, ca)[0] == 401
    stranger = token_of(cluster, namespace, "stranger")
    assert https_get(pod_ip, proxy_port, api_path, ca, stranger)[0] == 403
    reader = token_of(cluster, namespace, "reader")
    cluster.kubectl(
        "create", "rolebinding", "reader", f"--role=registry-user-{NAME}",
        f"--serviceaccount={namespace}:reader", "-n", namespace,
    )  # fmt: skip
    status, body = https_get(pod_ip, proxy_port, api_path, ca, reader)
    assert status == 200, body
    assert yaml.safe_load(body)["items"] == []


def test_without_a_proxy_the_rest_port_answers_on_the_pod_address(
    cluster: Cluster, namespace: str, images: None, database: PostgresServer
) -> None:
    """The control case: the same server bound to 0.0.0.0 (no proxy) answers on its pod address."""
    rest_port = host_free_port()
    cluster.apply_yaml(registry_docs(namespace, rest_port, database, None), namespace)
    cluster.wait_condition(namespace, NAME, "Available", "True", timeout=180)
    pod = registry_pod(cluster, namespace, NAME)
    assert container(pod, "rest-container")["args"][0] == "--hostname=0.0.0.0"
    assert container(pod, "rest-container")["securityContext"]["readOnlyRootFilesystem"] is True
    pod_ip = pod["status"]["podIP"]
    assert not refused(pod_ip, rest_port)
    listed = requests.get(f"http://{pod_ip}:{rest_port}{API}/registered_models", timeout=10)
    assert listed.status_code == 200, listed.text
