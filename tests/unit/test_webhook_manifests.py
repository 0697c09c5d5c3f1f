"""config/webhook and config/certmanager agree with the operator: the names it patches, the paths
kopf serves, the Service and port, the certificate directory, and the RBAC rows for them.

config/default includes config/webhook as a Component (``components: [../webhook]``); where the
checkout's config/default does not yet, the test adds that line to a copy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_registry_operator.handlers.webhooks import MUTATE_ID, VALIDATE_ID
from model_registry_operator.kinds import EXTRA_RULES
from model_registry_operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "model-registry-operator-system"


def build(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to build the kustomizations"
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=True, timeout=60)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("config") / "config"
    shutil.copytree(ROOT / "config", copy)
    default = copy / "default" / "kustomization.yaml"
    kustomization = yaml.safe_load(default.read_text())
    if "../webhook" not in (kustomization.get("components") or []):
        kustomization.setdefault("components", []).append("../webhook")
        default.write_text(yaml.safe_dump(kustomization))
    return copy


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def manager(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(docs, "Deployment")
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "manager"]
    return container


def test_default_with_webhooks_matches_what_the_operator_serves_and_patches(config: Path) -> None:
    settings = OperatorSettings()
    docs = build(config / "default")
    (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == settings.webhook_service]
    assert service["metadata"]["namespace"] == NAMESPACE
    for kind, name, path in (
        ("ValidatingWebhookConfiguration", settings.webhook_validating_configuration, VALIDATE_ID),
        ("MutatingWebhookConfiguration", settings.webhook_mutating_configuration, MUTATE_ID),
    ):
        configuration = one(docs, kind)
        assert configuration["metadata"]["name"] == name
        (webhook,) = configuration["webhooks"]
        assert webhook["clientConfig"]["service"] == {
            "name": settings.webhook_service,
            "namespace": NAMESPACE,
            "path": f"/{path}",
        }
        assert webhook["rules"][0]["apiVersions"] == ["v1beta1"]  # what the handlers are registered for
        # The ClusterRole may patch exactly this configuration's CA bundle.
        assert any(rule.resource_names == (name,) and rule.verbs == ("get", "patch") for rule in EXTRA_RULES), name
        (role,) = [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("manager-role")]
        assert any(rule.get("resourceNames") == [name] and "patch" in rule["verbs"] for rule in role["rules"])
    container = manager(docs)
    env = {e["name"]: e for e in container["env"]}
    assert env["ENABLE_WEBHOOKS"]["value"] == "true"
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    port = next(p for p in container["ports"] if p["name"] == "webhook-server")
    assert port["containerPort"] == settings.webhook_port
    assert service["spec"]["ports"][0]["targetPort"] == "webhook-server"
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    mount = next(m for m in container["volumeMounts"] if m["name"] == "webhook-certs")
    assert mount["mountPath"] == settings.webhook_cert_dir
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert next(v for v in volumes if v["name"] == "webhook-certs") == {"name": "webhook-certs", "emptyDir": {}}


def test_certmanager_overlay_mounts_its_secret_and_injects_its_ca(config: Path) -> None:
    settings = OperatorSettings()
    docs = build(config / "certmanager")
    certificate = one(docs, "Certificate")
    assert certificate["metadata"]["namespace"] == NAMESPACE
    assert f"{settings.webhook_service}.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"]["name"] == one(docs, "Issuer")["metadata"]["name"]
    source = f"{NAMESPACE}/{certificate['metadata']['name']}"
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        assert one(docs, kind)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == source
    env = {e["name"]: e.get("value") for e in manager(docs)["env"]}
    assert env["WEBHOOK_CERT_SOURCE"] == "files"
    assert env["ENABLE_WEBHOOKS"] == "true"
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    volume = next(v for v in volumes if v["name"] == "webhook-certs")
    assert "emptyDir" not in volume
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert volume["secret"]["defaultMode"] & 0o004  # readable by the non-root user the operator runs as
