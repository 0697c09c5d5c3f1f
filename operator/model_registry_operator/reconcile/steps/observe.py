"""Step 5: what the registry's children say (from the watches, or listed afresh), the admission of
its Routes and AuthConfigs, and a live probe of its database (cached for PROBE_INTERVAL)."""

from __future__ import annotations

import asyncio
import os
import socket
import time

from ...database import probe as db_probe
from ...kinds import AUTH_CONFIG, ENDPOINT_SLICE, POD, ROUTE
from ...kube import Obj
from ...names import (
    APP_LABEL,
    FALSE,
    ISTIO_AVAILABLE,
    LEGACY_COMPONENT_LABEL,
    REGISTRY_COMPONENT,
    SERVICE_NAME_LABEL,
    TRUE,
    UNKNOWN,
)
from ...render.features import Feature
from ...render.modelregistry import digest_of
from ...status.modelregistry import DatabaseState, Observation
from ...status.security import SecurityObservation, auth_config_state, route_state
from ..observed import ObservedChildren
from . import Env, Key, ProbeMemo, ProbeTarget, RegistryState

PROBE_INTERVAL = 30.0


async def observe(
    env: Env,
    state: RegistryState,
    observed: ObservedChildren,
    key: Key,
    generation: int,
    istio_gateway: bool,
    deployment: Obj | None,
    probe_target: ProbeTarget | None,
    *,
    relist: bool,
    features: Feature,
    conflicts: list[str] | None = None,
) -> Observation:
    namespace, name = key
    if relist:  # start over from the API server, in case a watch missed something
        pods, slices = await asyncio.gather(
            env.kube.list(POD, namespace, f"{APP_LABEL}={name},{LEGACY_COMPONENT_LABEL}={REGISTRY_COMPONENT}"),
            env.kube.list(ENDPOINT_SLICE, namespace, f"{SERVICE_NAME_LABEL}={name}"),
        )
        observed.replace(key, pods, slices)
    database, security = await asyncio.gather(
        probe(env, state, probe_target), observe_security(env, namespace, istio_gateway, features)
    )
    return Observation(
        generation=generation,
        deployment=deployment if deployment is not None else observed.deployment(key),
        ready_endpoints=observed.ready_endpoints(key),
        pods=observed.pods(key),
        database=database,
        security=security,
        exposed_hosts=features.hosts,
        name_conflicts=conflicts or [],
    )


async def observe_security(env: Env, namespace: str, istio_gateway: bool, features: Feature) -> SecurityObservation:
    """Admission of the Routes and readiness of the AuthConfigs the mode conditions wait for."""
    routes = await asyncio.gather(*(env.kube.get(ROUTE, r.namespace, r.name) for r in features.routes))
    auth_configs = await asyncio.gather(*(env.kube.get(AUTH_CONFIG, namespace, n) for n in features.auth_configs))
    states = [route_state(r.condition, body, r.name) for r, body in zip(features.routes, routes, strict=True)]
    states += [
        auth_config_state(ISTIO_AVAILABLE, body, n) for n, body in zip(features.auth_configs, auth_configs, strict=True)
    ]
    missing = list(features.missing_apis)
    return SecurityObservation(
        mode=features.mode,
        sidecar=features.sidecar,
        gateway=istio_gateway,
        missing_apis=missing,
        problems=features.problems,
        objects=states,
    )


async def probe(env: Env, state: RegistryState, target: ProbeTarget | None) -> DatabaseState | None:
    if target is None:
        return None
    target_key = digest_of({"target": repr(target), "password": digest_of({"p": target.password or ""})})
    memo = state.probe
    if memo and memo.key == target_key and time.monotonic() - memo.at < PROBE_INTERVAL:
        return memo.state
    result = await _probe_now(env, target)
    state.probe = ProbeMemo(target_key, time.monotonic(), result)
    return result


async def _probe_now(env: Env, target: ProbeTarget) -> DatabaseState:
    try:
        await asyncio.to_thread(socket.getaddrinfo, target.host, target.port)
    except OSError:
        where = "inside the cluster" if os.environ.get("KUBERNETES_SERVICE_HOST") else "where it runs"
        return DatabaseState(
            UNKNOWN, db_probe.UNKNOWN, f"the operator cannot resolve {target.host} from {where}; not probed"
        )
    outcome = await db_probe.probe(target, timeout=env.settings.database_probe_timeout)
    if outcome.ok:
        return DatabaseState(TRUE, outcome.reason, outcome.message)
    status = UNKNOWN if outcome.reason == db_probe.UNKNOWN else FALSE
    return DatabaseState(status, outcome.reason, outcome.message)
