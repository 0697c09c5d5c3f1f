"""Step 3: server-side apply of the rendered objects, and the drift check of the watched ones.

Two waves: what the pods of the later objects need to start (ServiceAccount, Secrets,
ConfigMaps, PVCs) first. Objects outside the registry's namespace (cluster-scoped, or in another
namespace) are claimed (:mod:`..claims`): one whose name another registry holds is skipped and
reported as a :class:`NameConflict`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ...kinds import UNOWNED, kind_of
from ...kube import Obj
from ..claims import NameConflict
from . import Env, Key, ReconcileResult, RegistryState, unpack

# Applied first: what pods of the later objects need to start.
FIRST_WAVE = {"ServiceAccount", "Secret", "ConfigMap", "PersistentVolumeClaim"}


async def apply(
    env: Env, state: RegistryState, key: Key, desired: list[Obj], result: ReconcileResult
) -> dict[tuple[str, str], Obj]:
    """Apply every object; one whose name another registry holds is skipped (``result.conflicts``).
    The live objects by (kind, name)."""
    applied: dict[tuple[str, str], Obj] = {}
    waves = [[o for o in desired if o["kind"] in FIRST_WAVE], [o for o in desired if o["kind"] not in FIRST_WAVE]]
    for wave in waves:
        # Every apply ends before an error is raised, and before a reconcile cancelled for its time
        # limit lets go of the registry: one still under way after the reconcile gave up could
        # re-create an object the finalizer has just deleted.
        answers = asyncio.gather(*(_apply_one(env, state, key, obj) for obj in wave), return_exceptions=True)
        try:
            live = await asyncio.shield(answers)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await answers
            raise
        for obj, answer in zip(wave, live, strict=True):
            if isinstance(answer, NameConflict):
                result.conflicts.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                applied[(obj["kind"], obj["metadata"]["name"])] = answer
    return applied


async def _apply_one(env: Env, state: RegistryState, key: Key, obj: Obj) -> Obj:
    if outside(obj, key[0]):  # another registry of the same name may want it: claimed
        return await state.claims.apply(env.kube, obj, key)
    return await env.kube.apply(obj)


def drifted(state: RegistryState | None, child: Obj) -> bool:
    """Whether a child we render no longer carries what we applied (edited by hand)."""
    applied = state.applied if state is not None else None
    if applied is None:
        # Not applied yet: unless the first reconcile is applying it right now.
        return state is None or state.reconciling is None
    packed = applied.desired.get((child.get("kind", ""), (child.get("metadata") or {}).get("name", "")))
    if packed is None:  # pods, endpoint slices: observed, not rendered
        return False
    desired = unpack(packed)
    body = {k: v for k, v in desired.items() if k != "metadata"}
    return not (is_subset(body, child) and is_subset(_owned_meta(desired), child.get("metadata", {})))


def is_subset(desired: Any, live: Any) -> bool:
    """True when every field we set has the same value in the live object (SSA semantics)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and is_subset(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
        )
    return bool(desired == live)


def unowned(obj: Obj, namespace: str) -> bool:
    """Whether no owner reference can collect ``obj`` (cluster-scoped, or in another namespace)."""
    kind = kind_of(obj)
    return not kind.namespaced or kind in UNOWNED or obj["metadata"].get("namespace", namespace) != namespace


def outside(obj: Obj, namespace: str) -> bool:
    """Whether ``obj`` is cluster-scoped or in another namespace: its name is not unique to the
    registry's namespace (in its own namespace, the API server keeps two registries' names apart)."""
    return not kind_of(obj).namespaced or obj["metadata"].get("namespace", namespace) != namespace


def _owned_meta(desired: Obj) -> Obj:
    """The metadata fields we set that a hand edit could change (labels, annotations)."""
    meta = desired.get("metadata", {})
    return {k: meta[k] for k in ("labels", "annotations") if k in meta}
