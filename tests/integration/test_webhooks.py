"""The admission webhooks (ENABLE_WEBHOOKS) called by the real API server over TLS.

The webhook configurations are config/webhook's, through its Service (whose endpoint is the
operator process on loopback), plus a namespaceSelector that limits them to this module's
namespaces (the cluster is shared with the rest of the suite). The
operator generates the certificate, keeps it in a Secret and patches the CA bundle in itself; its
validity here is 30 s, so it is renewed every 20 s while the module runs.
"""

from __future__ import annotations

import base64
import copy
import socket
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from model_registry_devcluster.simnode import SimulatedNode
from model_registry_operator.kube import lookup
from tests.backends.certs import served_certificate

from .conftest import ROOT, OperatorProcess, _free_port
from .kube import MR, Cluster, wait_for

pytestmark = pytest.mark.integration

CLUSTER_ROLE_BINDING = lookup("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
SECRET = lookup("v1", "Secret")
SELECTOR_LABEL = "modelregistry.opendatahub.io/webhook-test"
PATHS = {
    "ValidatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "MutatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
}
DENIED = 'admission webhook "vmodelregistry.opendatahub.io" denied the request: '
DB = {"host": "127.0.0.1", "port": 1, "database": "d", "username": "u"}  # closed: the probe answers at once


@dataclass
class Webhooks:
    key: str
    port: int
    workdir: Path
    env: dict[str, str]
    configurations: dict[str, str]  # kind -> name
    ops_namespace: str

    def configuration(self, cluster: Cluster, kind: str) -> dict[str, Any]:
        result: dict[str, Any] = cluster.kube.request_sync("GET", f"{PATHS[kind]}/{self.configurations[kind]}")
        return result

    def bundles(self, cluster: Cluster) -> set[str]:
        return {
            str(w["clientConfig"].get("caBundle", ""))
            for kind in PATHS
            for w in self.configuration(cluster, kind)["webhooks"]
        }

    def secret_bundle(self, cluster: Cluster) -> str | None:
        secret = cluster.get(SECRET, self.ops_namespace, self.env["WEBHOOK_CERT_SECRET"])
        return str(secret["data"]["ca.crt"]) if secret else None

    def served_certificate(self) -> x509.Certificate:
        return served_certificate(self.port)

    def restart(self, operator: OperatorProcess, **env: str) -> None:
        operator.stop()
        merged = {**self.env, **env}
        operator.start(Path(tempfile.mkdtemp(dir=self.workdir)), merged)
        if merged["ENABLE_WEBHOOKS"] == "true":  # kopf listens once it has scanned the API's resources
            wait_for(lambda: self.listening(), timeout=30, what="the webhook server listening")

    def listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0


SERVICE = "webhook-service"


def _configurations(key: str, namespace: str) -> list[dict[str, Any]]:
    """config/webhook's configurations as config/default makes them (the Service in the operator's
    namespace), limited to this module's namespaces."""
    docs = [d for d in yaml.safe_load_all((ROOT / "config" / "webhook" / "manifests.yaml").read_text()) if d]
    for doc in docs:
        doc["metadata"]["name"] = f"mro-test-{key}-{doc['metadata']['name']}"
        for webhook in doc["webhooks"]:
            service = webhook["clientConfig"]["service"]
            assert service["name"] == SERVICE
            service["namespace"] = namespace
            webhook["namespaceSelector"] = {"matchLabels": {SELECTOR_LABEL: key}}
    return docs


def _service(namespace: str, port: int) -> list[dict[str, Any]]:
    """config/webhook's Service, its endpoint being the operator process on loopback: the API server
    (``--enable-aggregator-routing``) calls that address and verifies the certificate for
    ``webhook-service.<namespace>.svc``, as in a cluster. No selector: there is no operator Pod."""
    service = yaml.safe_load((ROOT / "config" / "webhook" / "service.yaml").read_text())
    service["metadata"]["namespace"] = namespace
    del service["spec"]["selector"]
    (service_port,) = service["spec"]["ports"]
    service_port["targetPort"] = port
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{SERVICE}-operator",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": SERVICE, "endpointslice.kubernetes.io/managed-by": "tests"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"name": service_port["name"], "port": port, "protocol": "TCP"}],
    }
    return [service, endpoints]


@pytest.fixture(scope="module")
def webhooks(
    cluster: Cluster, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webhooks]:
    key = uuid.uuid4().hex[:6]
    ops = f"t-ops-{key}"
    cluster.create_namespace(ops)
    port = _free_port()
    workdir = tmp_path_factory.mktemp("webhooks")
    docs = _configurations(key, ops)
    configurations = {d["kind"]: d["metadata"]["name"] for d in docs}
    env = {
        "ENABLE_WEBHOOKS": "true",
        "WEBHOOK_PORT": str(port),
        "WEBHOOK_BIND_ADDRESS": "127.0.0.1",
        "WEBHOOK_CERT_DIR": str(workdir / "certs"),
        "WEBHOOK_SERVICE_NAME": SERVICE,
        "WEBHOOK_CERT_SECRET": "webhook-server-cert",
        "WEBHOOK_CERT_VALIDITY_SECONDS": "30",
        "WEBHOOK_CERT_CHECK_SECONDS": "1",
        "WEBHOOK_VALIDATING_CONFIGURATION": configurations["ValidatingWebhookConfiguration"],
        "WEBHOOK_MUTATING_CONFIGURATION": configurations["MutatingWebhookConfiguration"],
        "POD_NAMESPACE": ops,
    }
    hooks = Webhooks(key, port, workdir, env, configurations, ops)
    try:
        for obj in _service(ops, port):
            cluster.kube.request_sync("POST", lookup(obj["apiVersion"], obj["kind"]).path(ops), body=obj)
        hooks.restart(operator)
        for doc in docs:
            cluster.kube.request_sync("POST", PATHS[doc["kind"]], body=doc)
        yield hooks
    finally:
        for kind, name in configurations.items():
            cluster.kube.request_sync("DELETE", f"{PATHS[kind]}/{name}")
        operator.stop()
        operator.start(tmp_path_factory.mktemp("operator"))
        cluster.kubectl("delete", "namespace", ops, "--wait=false", check=False)


@pytest.fixture
def two_namespaces(cluster: Cluster, webhooks: Webhooks, namespace: str) -> Iterator[tuple[str, str]]:
    """Two namespaces the webhooks apply to."""
    other = f"t-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(other)
    for name in (namespace, other):
        cluster.kube.request_sync(
            "PATCH",
            f"/api/v1/namespaces/{name}",
            body={"metadata": {"labels": {SELECTOR_LABEL: webhooks.key}}},
            content_type="application/merge-patch+json",
        )
    yield namespace, other
    cluster.kubectl("delete", "modelregistries", "--all", "-n", other, "--wait=true", "--timeout=60s", check=False)
    cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def registry(name: str, spec: dict[str, Any], version: str = "v1beta1") -> str:
    body = {
        "apiVersion": f"modelregistry.opendatahub.io/{version}",
        "kind": "ModelRegistry",
        "metadata": {"name": name},
        "spec": spec,
    }
    return yaml.safe_dump(body)


def proxied(name: str) -> str:
    return registry(name, {"rest": {}, "postgres": dict(DB), "kubeRBACProxy": {}})


def refused(cluster: Cluster, text: str, namespace: str) -> str:
    result = cluster.apply_yaml(text, namespace, check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    return result.stderr


def serving(hooks: Webhooks, cluster: Cluster) -> str:
    """Wait until the operator has patched its CA bundle (the Secret's) into every webhook."""

    def patched() -> str | None:
        bundle = hooks.secret_bundle(cluster)
        return bundle if bundle and hooks.bundles(cluster) == {bundle} else None

    return wait_for(patched, timeout=30, what="the CA bundle patched into both configurations")


def test_a_registry_whose_name_is_taken_for_a_cluster_scoped_object_is_refused(
    cluster: Cluster, webhooks: Webhooks, two_namespaces: tuple[str, str], operator: OperatorProcess
) -> None:
    first, second = two_namespaces
    serving(webhooks, cluster)
    name = f"taken-{webhooks.key}"
    cluster.apply_yaml(proxied(name), first)
    stderr = refused(cluster, proxied(name), second)
    assert DENIED in stderr
    assert (
        f"metadata.name: ModelRegistry {first}/{name} already has this name, and both would own "
        f"ClusterRoleBinding {name}-auth-delegator"
    ) in stderr
    assert cluster.get(MR, second, name) is None
    # The user's request failed, not the operator: no ERROR in its log for it.
    refusals = [line for line in operator.text().splitlines() if "already has this name" in line]
    assert refusals
    assert not [line for line in refusals if " ERROR " in line]
    # The name alone is no conflict: without a proxy nothing cluster-scoped carries it (plain Kubernetes).
    cluster.apply_yaml(registry(name, {"rest": {}, "postgres": dict(DB)}), second)
    # ... until an edit asks for one.
    stderr = refused(cluster, proxied(name), second)
    assert f"metadata.name: ModelRegistry {first}/{name} already has this name" in stderr


def test_the_defaults_are_written_into_the_stored_object(
    cluster: Cluster, webhooks: Webhooks, two_namespaces: tuple[str, str]
) -> None:
    """A defaulted-but-empty ``postgres`` block next to ``mysql`` is dropped (as upstream's webhook
    does); without the webhook the CRD refuses the object for naming two databases."""
    namespace, _ = two_namespaces
    serving(webhooks, cluster)
    for version in ("v1beta1", "v1alpha1"):
        name = f"defaults-{version}"
        cluster.apply_yaml(
            registry(name, {"rest": {}, "mysql": dict(DB, port=3306), "postgres": {}}, version), namespace
        )
        stored = cluster.get(MR, namespace, name)
        assert stored is not None
        assert "postgres" not in stored["spec"], stored["spec"]
        assert stored["spec"]["rest"]["serviceRoute"] == "disabled"
        assert stored["spec"]["mysql"]["host"] == "127.0.0.1"


def test_a_registry_outside_registries_namespace_is_refused(
    cluster: Cluster, webhooks: Webhooks, two_namespaces: tuple[str, str], operator: OperatorProcess
) -> None:
    allowed, other = two_namespaces
    webhooks.restart(operator, REGISTRIES_NAMESPACE=allowed)
    try:
        serving(webhooks, cluster)
        text = registry("outside", {"rest": {}, "postgres": dict(DB)})
        stderr = refused(cluster, text, other)
        namespace_rule = f"registries must be created in namespace {allowed} (REGISTRIES_NAMESPACE), not {other}"
        assert f"{DENIED}metadata.namespace: {namespace_rule}" in stderr
        cluster.apply_yaml(text, allowed)
    finally:
        webhooks.restart(operator)


def test_certificate_renewal_repatches_the_ca_bundle_and_calls_keep_working(
    cluster: Cluster, webhooks: Webhooks, two_namespaces: tuple[str, str]
) -> None:
    first, second = two_namespaces
    before = serving(webhooks, cluster)
    old_leaf = webhooks.served_certificate()
    name = f"renewed-{webhooks.key}"
    cluster.apply_yaml(proxied(name), first)

    def renewed() -> str | None:
        now = serving(webhooks, cluster)
        return now if now != before else None

    after = wait_for(renewed, timeout=40, interval=0.5, what="the certificate renewed (30 s validity)")
    new_ca = x509.load_pem_x509_certificates(base64.b64decode(after))
    old_ca = x509.load_pem_x509_certificates(base64.b64decode(before))
    assert new_ca[1:] == old_ca[:1]  # the previous CA stays trusted while replicas switch

    def new_leaf() -> x509.Certificate | None:
        leaf = webhooks.served_certificate()
        return leaf if leaf.serial_number != old_leaf.serial_number else None

    leaf = wait_for(new_leaf, timeout=10, what="the server serving the renewed certificate")
    leaf.verify_directly_issued_by(new_ca[0])  # a CA the API server knows only from the new bundle
    stderr = refused(cluster, proxied(name), second)
    assert f"{DENIED}metadata.name: ModelRegistry {first}/{name} already has this name" in stderr


def test_with_the_webhook_down_the_reconcile_still_reports_the_conflict(
    cluster: Cluster,
    webhooks: Webhooks,
    two_namespaces: tuple[str, str],
    operator: OperatorProcess,
    sim_node: SimulatedNode,
) -> None:
    """failurePolicy Ignore and no webhook server: the API server lets everything the CRD allows
    in, and the second of two colliding registries gets NameConflict naming the first."""
    first, second = two_namespaces
    for kind, path in PATHS.items():
        live = webhooks.configuration(cluster, kind)
        patched = copy.deepcopy(live["webhooks"])
        for webhook in patched:
            webhook["failurePolicy"] = "Ignore"
        cluster.kube.request_sync(
            "PATCH",
            f"{path}/{webhooks.configurations[kind]}",
            body={"webhooks": patched},
            content_type="application/merge-patch+json",
        )
    webhooks.restart(operator, ENABLE_WEBHOOKS="false")
    assert not webhooks.listening()  # nobody serves the webhooks

    name = f"down-{webhooks.key}"
    cluster.apply_yaml(proxied(name), first)
    binding = f"{name}-auth-delegator"
    wait_for(lambda: cluster.get(CLUSTER_ROLE_BINDING, None, binding), what="the first registry's binding")
    cluster.apply_yaml(proxied(name), second)
    available = cluster.wait_condition(second, name, "Available", "False", "NameConflict")
    assert (
        f"ClusterRoleBinding {binding} already exists and belongs to ModelRegistry {first}/{name}"
        in available["message"]
    )
    # No mutation either: the CRD itself refuses the spec the webhook would have fixed.
    stderr = refused(cluster, registry("nodefaults", {"rest": {}, "mysql": dict(DB, port=3306), "postgres": {}}), first)
    assert "denied the request" not in stderr
    assert "postgres" in stderr
