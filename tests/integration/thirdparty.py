"""Third-party APIs for the integration tests: install / remove the stand-in CRDs under
tests/crds, and play the controllers behind them (the OpenShift router admitting Routes,
Authorino marking AuthConfigs Ready)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from model_registry_operator.kube import lookup

from .kube import Cluster, wait_for

CRDS = Path(__file__).resolve().parents[1] / "crds"
ROUTE = lookup("route.openshift.io/v1", "Route")
AUTH_CONFIG = lookup("authorino.kuadrant.io/v1beta3", "AuthConfig")
CRD = lookup("apiextensions.k8s.io/v1", "CustomResourceDefinition")

OPENSHIFT = ("route.openshift.io", "user.openshift.io", "config.openshift.io")
ISTIO = ("networking.istio.io", "security.istio.io", "authorino.kuadrant.io")


def crd_names(group: str) -> list[str]:
    return [doc["metadata"]["name"] for doc in yaml.safe_load_all((CRDS / f"{group}.yaml").read_text()) if doc]


def install(cluster: Cluster, *groups: str) -> None:
    for group in groups:
        cluster.kubectl("apply", "--server-side", "-f", str(CRDS / f"{group}.yaml"))
        for name in crd_names(group):
            cluster.wait_established(f"crd/{name}")
    # The API server serves a new group shortly after Established.
    wait_for(
        lambda: all(g in _served(cluster) for g in groups), timeout=30, what=f"discovery to serve {', '.join(groups)}"
    )


def uninstall(cluster: Cluster, *groups: str) -> None:
    for group in groups:
        cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", str(CRDS / f"{group}.yaml"))
    names = [name for group in groups for name in crd_names(group)]
    wait_for(lambda: all(cluster.get(CRD, None, n) is None for n in names), timeout=120, what="CRDs to go")
    wait_for(lambda: not any(g in _served(cluster) for g in groups), timeout=30, what="discovery to drop them")


def _served(cluster: Cluster) -> set[str]:
    groups = cluster.kube.request_sync("GET", "/apis").get("groups") or []
    return {g["name"] for g in groups}


def wait_message(cluster: Cluster, namespace: str, name: str, type_: str, status: str, text: str) -> dict[str, Any]:
    """Wait for a condition with this status whose message mentions ``text``."""

    def check() -> dict[str, Any] | None:
        cond = cluster.condition(namespace, name, type_)
        return cond if cond and cond["status"] == status and text in cond["message"] else None

    return wait_for(check, what=f"{type_}={status} mentioning {text!r} on {namespace}/{name}")


def admit_route(cluster: Cluster, namespace: str, name: str) -> None:
    """What the OpenShift router does: report the Route admitted."""
    route = wait_for(lambda: cluster.get(ROUTE, namespace, name), what=f"Route {namespace}/{name}")
    host = (route.get("spec") or {}).get("host") or f"{name}-{namespace}.apps.example.test"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ingress = {
        "host": host,
        "routerName": "default",
        "conditions": [{"type": "Admitted", "status": "True", "lastTransitionTime": now}],
    }
    cluster.patch(ROUTE, namespace, name, {"status": {"ingress": [ingress]}}, "status")


def ready_auth_config(cluster: Cluster, namespace: str, name: str) -> None:
    """What Authorino does once it has loaded an AuthConfig."""
    wait_for(lambda: cluster.get(AUTH_CONFIG, namespace, name), what=f"AuthConfig {namespace}/{name}")
    cond = {"type": "Ready", "status": "True", "reason": "Reconciled"}
    cluster.patch(AUTH_CONFIG, namespace, name, {"status": {"conditions": [cond]}}, "status")


@contextlib.contextmanager
def ingress_gateway(cluster: Cluster, namespace: str) -> Iterator[tuple[str, str]]:
    """An ingress namespace with its own ``istio-ingressgateway`` Service (one per test, selected
    by a label of its own): ``(ingress namespace, istioIngress selector)``; deleted afterwards."""
    ingress_ns = f"{namespace}-ingress"
    cluster.create_namespace(ingress_ns)
    selector = f"ingress-{namespace[2:]}"
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "istio-ingressgateway", "labels": {"istio": selector}},
        "spec": {"ports": [{"name": "http2", "port": 80}, {"name": "https", "port": 443}]},
    }
    cluster.apply_yaml(yaml.safe_dump(service), ingress_ns)
    try:
        yield ingress_ns, selector
    finally:
        cluster.kubectl("delete", "namespace", ingress_ns, "--wait=false", check=False)
