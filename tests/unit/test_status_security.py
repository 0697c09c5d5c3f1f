"""Conditions of the security modes and how they fold into Available."""

from __future__ import annotations

from typing import Any

from model_registry_operator.status.conditions import Cond
from model_registry_operator.status.modelregistry import Observation, registry_conditions
from model_registry_operator.status.security import (
    ObjectState,
    SecurityObservation,
    auth_config_state,
    fold_into_available,
    route_state,
    security_conditions,
)

Obj = dict[str, Any]


def pod(*containers: tuple[str, bool], name: str = "p1", deleting: bool = False) -> Obj:
    meta: Obj = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    statuses = [
        {"name": c, "ready": ready, "state": {} if ready else {"waiting": {"reason": "ContainerCreating"}}}
        for c, ready in containers
    ]
    return {"metadata": meta, "status": {"containerStatuses": statuses}}


def deployment() -> Obj:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 1,
            "updatedReplicas": 1,
            "availableReplicas": 1,
            "replicas": 1,
            "conditions": [{"type": "Available", "status": "True"}],
        },
    }


def by_type(conds: list[Cond]) -> dict[str, Cond]:
    return {c.type: c for c in conds}


def test_route_state_needs_every_ingress_admitted() -> None:
    assert not route_state("X", None, "r").ready
    assert "not admitted" in route_state("X", {"status": {}}, "r").message
    rejected = {
        "status": {
            "ingress": [{"host": "h", "conditions": [{"type": "Admitted", "status": "False", "message": "host taken"}]}]
        }
    }
    state = route_state("X", rejected, "r")
    assert not state.ready
    assert state.message == "Host h in Route r is unavailable: host taken"
    admitted = {"status": {"ingress": [{"conditions": [{"type": "Admitted", "status": "True"}]}]}}
    assert route_state("X", admitted, "r").ready


def test_auth_config_state() -> None:
    assert not auth_config_state("IstioAvailable", None, "a").ready
    assert not auth_config_state("IstioAvailable", {"status": {}}, "a").ready
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert auth_config_state("IstioAvailable", ready, "a").ready


def test_proxy_condition_needs_the_sidecar_ready_and_the_route_admitted() -> None:
    sec = SecurityObservation(mode="kube-rbac-proxy", sidecar="kube-rbac-proxy")
    assert by_type(security_conditions(sec, []))["KubeRBACProxyAvailable"].message.endswith("no active pods found")
    starting = [pod(("rest-container", True), ("kube-rbac-proxy", False))]
    cond = by_type(security_conditions(sec, starting))["KubeRBACProxyAvailable"]
    assert (cond.status, cond.reason) == ("False", "ResourcesUnavailable")
    assert "ContainerCreating" in cond.message
    ready = [
        pod(("kube-rbac-proxy", True), name="old", deleting=True),
        pod(("rest-container", True), ("kube-rbac-proxy", True)),
    ]
    assert by_type(security_conditions(sec, ready))["KubeRBACProxyAvailable"].status == "True"
    unadmitted = SecurityObservation(
        mode="oauth-proxy",
        sidecar="oauth-proxy",
        objects=[ObjectState("OAuthProxyAvailable", "Route", "reg-https", False, "Route reg-https not admitted")],
    )
    ready = [pod(("rest-container", True), ("oauth-proxy", True))]
    cond = by_type(security_conditions(unadmitted, ready))["OAuthProxyAvailable"]
    assert cond.status == "False"
    assert "reg-https" in cond.message


def test_istio_conditions() -> None:
    missing = SecurityObservation(mode="istio", missing_apis=["security.istio.io"])
    conds = by_type(security_conditions(missing, []))
    assert (conds["IstioAvailable"].status, conds["IstioAvailable"].reason) == ("False", "MissingAPI")
    assert "GatewayAvailable" not in conds
    # Without injection (no istio-proxy container) the sidecar is not waited for.
    sec = SecurityObservation(
        mode="istio",
        sidecar="istio-proxy",
        gateway=True,
        objects=[ObjectState("IstioAvailable", "AuthConfig", "reg", True)],
        problems={"GatewayAvailable": "no ingress"},
    )
    conds = by_type(security_conditions(sec, [pod(("rest-container", True))]))
    assert conds["IstioAvailable"].status == "True"
    assert (conds["GatewayAvailable"].status, conds["GatewayAvailable"].message) == ("False", "no ingress")
    injected = [pod(("rest-container", True), ("istio-proxy", False))]
    assert by_type(security_conditions(sec, injected))["IstioAvailable"].status == "False"


def test_a_failing_mode_makes_the_registry_unavailable() -> None:
    available = Cond("Available", "True", "DeploymentAvailable", "ok")
    assert fold_into_available(available, [Cond("IstioAvailable", "True", "ResourcesAvailable")]) == available
    folded = fold_into_available(available, [Cond("IstioAvailable", "False", "ResourcesUnavailable", "why")])
    assert (folded.status, folded.reason, folded.message) == ("False", "ResourcesUnavailable", "IstioAvailable: why")
    starting = Cond("Available", "False", "Starting", "s")
    assert fold_into_available(starting, [Cond("IstioAvailable", "False", "x")]) == starting

    sec = SecurityObservation(mode="kube-rbac-proxy", sidecar="kube-rbac-proxy")
    obs = Observation(
        generation=1,
        deployment=deployment(),
        ready_endpoints=1,
        pods=[pod(("rest-container", True), ("kube-rbac-proxy", True))],
        security=sec,
    )
    conds = by_type(registry_conditions(obs, None))
    assert conds["Available"].status == "True"
    assert conds["KubeRBACProxyAvailable"].status == "True"
    assert "KubeRBACProxyAvailable" not in by_type(registry_conditions(Observation(generation=1), None))
