"""Conditions of the security modes and exposures. Pure: what was observed in, conditions out.

`KubeRBACProxyAvailable` / `OAuthProxyAvailable`: the sidecar is ready in a pod and, when
rendered, the `<name>-https` Route is admitted. `IstioAvailable`: the mode's APIs are served,
the AuthConfig is Ready and, where the sidecar was injected, it is ready. `GatewayAvailable`:
the gateway Routes are admitted. Any of them False makes `Available` False.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..names import (
    AUTH_CONFIG_READY,
    FALSE,
    GATEWAY_AVAILABLE,
    ISTIO,
    KUBE_RBAC_PROXY,
    MISSING_API,
    MODE_CONDITION,
    OAUTH_PROXY,
    RESOURCES_AVAILABLE,
    RESOURCES_UNAVAILABLE,
    ROUTE_ADMITTED,
    TRUE,
)
from .conditions import Cond

MODE_TITLE = {KUBE_RBAC_PROXY: "kube-rbac-proxy", OAUTH_PROXY: "OAuth proxy", ISTIO: "Istio"}

Obj = dict[str, Any]


@dataclass(frozen=True)
class ObjectState:
    """Readiness of a Route (Admitted) or an AuthConfig (Ready) feeding a condition."""

    condition: str
    kind: str
    name: str
    ready: bool
    message: str = ""


@dataclass(frozen=True)
class SecurityObservation:
    """What the security mode and exposures need from the cluster."""

    mode: str | None = None
    sidecar: str | None = None
    gateway: bool = False  # an Istio gateway is configured
    missing_apis: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    objects: list[ObjectState] = field(default_factory=list)


def route_state(condition: str, route: Obj | None, name: str) -> ObjectState:
    """Admitted when every ingress of the Route says so (the OpenShift router writes it)."""
    if route is None:
        return ObjectState(condition, "Route", name, False, f"Route {name} not found")
    ingresses = (route.get("status") or {}).get("ingress") or []
    if not ingresses:
        return ObjectState(condition, "Route", name, False, f"Route {name} is not admitted by a router yet")
    for ingress in ingresses:
        admitted = next((c for c in ingress.get("conditions") or [] if c.get("type") == ROUTE_ADMITTED), None)
        if admitted is None or admitted.get("status") != TRUE:
            detail = (admitted or {}).get("message") or (admitted or {}).get("reason") or "not admitted"
            host = ingress.get("host") or (route.get("spec") or {}).get("host") or ""
            return ObjectState(condition, "Route", name, False, f"Host {host} in Route {name} is unavailable: {detail}")
    return ObjectState(condition, "Route", name, True)


def auth_config_state(condition: str, auth_config: Obj | None, name: str) -> ObjectState:
    if auth_config is None:
        return ObjectState(condition, "AuthConfig", name, False, f"AuthConfig {name} not found")
    ready = next(
        (c for c in (auth_config.get("status") or {}).get("conditions") or [] if c.get("type") == AUTH_CONFIG_READY),
        None,
    )
    if ready is None or ready.get("status") != TRUE:
        detail = (ready or {}).get("message") or (ready or {}).get("reason") or "not ready yet"
        return ObjectState(condition, "AuthConfig", name, False, f"AuthConfig {name} is not ready: {detail}")
    return ObjectState(condition, "AuthConfig", name, True)


def _sidecar_problem(pods: list[Obj], sidecar: str, required: bool) -> str | None:
    """Why no pod has the sidecar ready (None when one has; Istio's may be absent without injection)."""
    active = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not active:
        return "no active pods found"
    problem = None
    for pod in active:
        name = (pod.get("metadata") or {}).get("name", "?")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        status = next((s for s in statuses if s.get("name") == sidecar), None)
        if status is None:
            if not required:
                return None
            problem = f"container status of {sidecar} not yet available in pod {name}"
            continue
        if status.get("ready"):
            return None
        waiting = (status.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason") or "not ready"
        problem = f"container {sidecar} not ready in pod {name}: {reason}"
    return problem


def security_conditions(sec: SecurityObservation, pods: list[Obj]) -> list[Cond]:
    """The mode and gateway conditions (none when no mode is configured)."""
    conditions: list[Cond] = []
    if sec.mode is not None:
        type_ = MODE_CONDITION[sec.mode]
        title = MODE_TITLE[sec.mode]
        if sec.missing_apis and sec.mode == ISTIO:
            conditions.append(
                Cond(
                    type_,
                    FALSE,
                    MISSING_API,
                    f"{title} needs API group(s) the cluster does not serve: {', '.join(sec.missing_apis)}",
                )
            )
        else:
            conditions.append(_mode_condition(sec, type_, title, pods))
    if sec.gateway and sec.mode == ISTIO and not sec.missing_apis:
        conditions.append(_gateway_condition(sec))
    return conditions


def _mode_condition(sec: SecurityObservation, type_: str, title: str, pods: list[Obj]) -> Cond:
    if type_ in sec.problems:
        return Cond(type_, FALSE, RESOURCES_UNAVAILABLE, sec.problems[type_])
    if sec.sidecar:
        problem = _sidecar_problem(pods, sec.sidecar, required=sec.mode != ISTIO)
        if problem:
            return Cond(type_, FALSE, RESOURCES_UNAVAILABLE, f"{title} unavailable: {problem}")
    for state in sec.objects:
        if state.condition == type_ and not state.ready:
            return Cond(type_, FALSE, RESOURCES_UNAVAILABLE, f"{title} unavailable: {state.message}")
    return Cond(type_, TRUE, RESOURCES_AVAILABLE, f"{title} resources are available")


def _gateway_condition(sec: SecurityObservation) -> Cond:
    if GATEWAY_AVAILABLE in sec.problems:
        return Cond(GATEWAY_AVAILABLE, FALSE, RESOURCES_UNAVAILABLE, sec.problems[GATEWAY_AVAILABLE])
    for state in sec.objects:
        if state.condition == GATEWAY_AVAILABLE and not state.ready:
            return Cond(GATEWAY_AVAILABLE, FALSE, RESOURCES_UNAVAILABLE, state.message)
    return Cond(GATEWAY_AVAILABLE, TRUE, RESOURCES_AVAILABLE, "Istio Gateway resources are available")


def fold_into_available(available: Cond, conditions: list[Cond]) -> Cond:
    """A registry whose security mode is not working is not available (only overrides True)."""
    if available.status != TRUE:
        return available
    for cond in conditions:
        if cond.status != TRUE:
            return Cond(available.type, FALSE, RESOURCES_UNAVAILABLE, f"{cond.type}: {cond.message}")
    return available
