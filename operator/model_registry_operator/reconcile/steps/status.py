"""Step 6: the registry's status from an observation (pure reducers in :mod:`...status`), written
when it changed, and the events that tell users what happened."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ...kinds import MODEL_REGISTRY
from ...kube import ApiError, Obj
from ...names import (
    AVAILABLE,
    CONFIGURATION_ERROR,
    DEPLOYMENT_UNAVAILABLE,
    FORBIDDEN,
    MODE_CONDITIONS,
    NAME_CONFLICT,
    RECONCILE_ERROR,
    TRUE,
)
from ...status.conditions import set_conditions
from ...status.modelregistry import Observation, registry_conditions, registry_hosts
from . import Env, ReconcileResult, RegistryState, now, pack

log = logging.getLogger(__name__)

# While a registry starts, its conditions' messages change every few hundred milliseconds
# ("0 of 1 replicas updated", ...): a status refresh that changes messages only is written at
# most this often. A change of any condition's status or reason is written at once.
MESSAGE_HOLD_SECONDS = 2.0


async def write_status(
    env: Env,
    state: RegistryState,
    body: Obj,
    obs: Observation,
    spec_defaults: str,
    result: ReconcileResult | None = None,
    *,
    hold: bool = False,
    release: Callable[[], None] = lambda: None,
    gone: Callable[[], None] = lambda: None,
) -> bool:
    """Write the status when it changed; whether the registry is Available.

    ``hold``: a change of messages only may wait (``release`` is called when the wait is over);
    ``gone``: the registry was deleted meanwhile.
    """
    meta = body["metadata"]
    old = body.get("status") or {}
    previous = old.get("conditions") or []
    desired = registry_conditions(obs, previous)
    # A mode switched off (or to another) leaves no condition behind.
    wanted_types = {c.type for c in desired}
    kept = [c for c in previous if c.get("type") not in MODE_CONDITIONS or c.get("type") in wanted_types]
    conditions = set_conditions(kept, desired, now(), obs.generation)
    hosts = registry_hosts(meta["name"], meta["namespace"], obs.exposed_hosts)
    status: dict[str, Any] = {
        "observedGeneration": obs.generation,
        "conditions": conditions,
        "hosts": hosts,
        "hostsStr": ",".join(hosts),
        "specDefaults": spec_defaults or old.get("specDefaults") or "{}",
    }
    available = next(c for c in conditions if c["type"] == AVAILABLE)
    key = (meta["namespace"], meta["name"])
    if all(old.get(k) == v for k, v in status.items()):
        state.unhold()  # back to what was written
        return bool(available["status"] == TRUE)
    messages_only = (
        hold
        and _states(conditions) == _states(old.get("conditions"))
        and all(old.get(k) == v for k, v in status.items() if k != "conditions")
    )
    if messages_only:
        if state.held is None:  # not through the queue: that would hold back other triggers
            timer = asyncio.get_running_loop().call_later(MESSAGE_HOLD_SECONDS, release)
            state.held = (time.monotonic(), timer)
        if time.monotonic() - state.held[0] < MESSAGE_HOLD_SECONDS:
            return bool(available["status"] == TRUE)
    state.unhold()
    try:
        await env.kube.merge_patch(MODEL_REGISTRY, meta["namespace"], meta["name"], {"status": status}, "status")
    except ApiError as exc:
        if exc.not_found:  # deleted meanwhile: nothing left to report on
            gone()
            return False
        raise
    state.status = pack({**old, **status})
    before: Obj = next((c for c in old.get("conditions") or [] if c.get("type") == AVAILABLE), {})
    if (before.get("status"), before.get("reason")) != (available["status"], available["reason"]):
        log.info("%s/%s: Available=%s (%s) %s", *key, available["status"], available["reason"], available["message"])
    events(env, body, previous, available, obs, result)
    return bool(available["status"] == TRUE)


def events(
    env: Env, body: Obj, previous: list[Obj], available: Obj, obs: Observation, result: ReconcileResult | None
) -> None:
    before = next((c for c in previous if c.get("type") == AVAILABLE), None)
    old_generation = (body.get("status") or {}).get("observedGeneration")
    failed = obs.configuration_error or obs.reconcile_error
    if before is None and not failed:
        env.emit(body, "Normal", "Created", "Created the registry's objects")
    elif old_generation is not None and old_generation != obs.generation and not failed:
        env.emit(body, "Normal", "Updated", f"Applied generation {obs.generation}")
    if result and result.pruned:
        env.emit(body, "Normal", "Pruned", "Removed " + ", ".join(result.pruned))
    if before is not None and (before.get("status"), before.get("reason")) == (
        available["status"],
        available["reason"],
    ):
        return
    if available["status"] == TRUE:
        env.emit(body, "Normal", AVAILABLE, available["message"])
    elif available["reason"] in _WARNED:
        env.emit(body, "Warning", available["reason"], available["message"])


_WARNED = (CONFIGURATION_ERROR, RECONCILE_ERROR, FORBIDDEN, NAME_CONFLICT, DEPLOYMENT_UNAVAILABLE)
"""The Available reasons posted as Warning events."""


def _states(conditions: list[Obj] | None) -> list[tuple[Any, Any, Any]]:
    """What a condition says, without its message and times."""
    return [(c.get("type"), c.get("status"), c.get("reason")) for c in conditions or []]
