"""Deleting a registry while a reconcile is applying its cluster-scoped objects leaves nothing behind.

The interleaving is made real, not simulated: a validating admission webhook (served by the test,
registered with the API server) holds the creation of the registry's ClusterRoleBinding, so the
operator's apply is in flight while the registry is deleted.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_registry_operator.kube import lookup
from tests.backends.certs import CertificateAuthority

from .kube import MR, Cluster, wait_for

pytestmark = pytest.mark.integration

CLUSTER_ROLE_BINDING = lookup("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
NAMESPACE_LABEL = "modelregistry.opendatahub.io/namespace"
HOLD_LIMIT_SECONDS = 8.0


class HoldingWebhook:
    """Admits every request, holding real (not dry-run) creations while ``hold`` is set."""

    def __init__(self) -> None:
        self.hold = threading.Event()
        self.release = threading.Event()
        self.seen: list[tuple[str, bool]] = []  # (object name, dry run)
        ca = CertificateAuthority()
        self.ca_pem = ca.cert_pem
        self._certs = tempfile.TemporaryDirectory()
        cert, key = ca.issue_server().write(Path(self._certs.name), "webhook")
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request = review["request"]
                dry_run = bool(request.get("dryRun"))
                webhook.seen.append((request.get("name") or request["object"]["metadata"]["name"], dry_run))
                if webhook.hold.is_set() and not dry_run:
                    webhook.release.wait(HOLD_LIMIT_SECONDS)
                answer = {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {"uid": request["uid"], "allowed": True},
                }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._certs.cleanup()


@pytest.fixture
def holding_webhook(cluster: Cluster, namespace: str) -> Iterator[HoldingWebhook]:
    webhook = HoldingWebhook()
    name = f"hold-crb-{namespace}"
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"{namespace}.hold.example.test",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{webhook.port}/",
                    "caBundle": base64.b64encode(webhook.ca_pem.encode()).decode(),
                },
                "rules": [
                    {
                        "apiGroups": ["rbac.authorization.k8s.io"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["clusterrolebindings"],
                    }
                ],
                # Only this test's objects: every other ClusterRoleBinding is left alone.
                "objectSelector": {"matchLabels": {NAMESPACE_LABEL: namespace}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Ignore",
                "timeoutSeconds": 15,
            }
        ],
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(config))
    try:
        _wait_until_called(cluster, webhook, namespace)
        yield webhook
    finally:
        webhook.close()
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, "--wait=false", check=False)


def _wait_until_called(cluster: Cluster, webhook: HoldingWebhook, namespace: str) -> None:
    """The API server picks up a new webhook configuration asynchronously: probe with dry runs."""
    probe = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"probe-{namespace}", "labels": {NAMESPACE_LABEL: namespace}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [],
    }
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cluster.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(probe))
        if any(name == f"probe-{namespace}" for name, _ in webhook.seen):
            return
        time.sleep(0.3)
    raise AssertionError("the webhook was never called")


def test_delete_during_apply_of_cluster_scoped_objects_leaves_none(
    cluster: Cluster, namespace: str, holding_webhook: HoldingWebhook
) -> None:
    name = f"race-{namespace[2:8]}"
    binding = f"{name}-auth-delegator"
    body = {
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": name},
        "spec": {"rest": {}, "postgres": {"generateDeployment": True}, "kubeRBACProxy": {"serviceRoute": "disabled"}},
    }
    holding_webhook.hold.set()
    try:
        cluster.apply_yaml(yaml.safe_dump(body), namespace)
        # The operator's apply of the ClusterRoleBinding is now waiting in the webhook.
        wait_for(lambda: (binding, False) in holding_webhook.seen, what="the operator to create the binding")
        cluster.kubectl("delete", "-n", namespace, f"mr/{name}", "--wait=false")
        # Long enough for the deletion to be seen and cleaned up while the apply still waits.
        time.sleep(2)
        holding_webhook.release.set()
        wait_for(lambda: cluster.get(MR, namespace, name) is None, what="the registry to go")
        wait_for(
            lambda: cluster.get(CLUSTER_ROLE_BINDING, None, binding) is None,
            timeout=10,
            what="the ClusterRoleBinding to be removed with its registry",
        )
    finally:
        holding_webhook.release.set()
        cluster.kubectl("delete", "clusterrolebinding", binding, "--ignore-not-found", check=False)
