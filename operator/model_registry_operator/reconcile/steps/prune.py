"""Step 4: delete what the registry owns and no longer renders; at deletion (the finalizer), what
no owner reference can collect.

Namespaced children carry an owner reference to the registry and its name label; cluster-scoped
and cross-namespace ones (UNOWNED) carry the registry's name and namespace as labels instead, and
pruning and the finalizer find them by those labels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ...kinds import AUTH_CONFIG, OPTIONAL_APIS, PRUNABLE, ROUTE, UNOWNED, Kind, kind_of, served
from ...kube import ApiError, Obj
from ...names import NAMESPACE_LABEL, REGISTRY_LABEL, RETAIN_ANNOTATION
from ..claims import Ref, ref_of
from . import Env

# Kinds a registry may own in its namespace; anything labelled as ours and no longer
# rendered is deleted.
# PRUNABLE: the kinds a registry may own in its namespace (anything labelled as ours and no
# longer rendered is deleted); UNOWNED: cluster-scoped objects and objects in other namespaces,
# which no owner reference can collect, found by their name and namespace labels. Both from the
# table in kinds.py, each kind of an optional API only while the cluster serves it.
__all__ = ["AUTH_CONFIG", "PRUNABLE", "ROUTE", "UNOWNED"]

Released = Callable[[Ref], None]  # an object is gone: registries waiting for its name may take it


async def prune(env: Env, namespace: str, name: str, uid: str, desired: list[Obj], released: Released) -> list[str]:
    """Delete our objects that ``desired`` no longer holds; their kind/name."""
    wanted = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in desired}
    groups = env.capabilities().groups
    kinds = served(PRUNABLE, groups)
    owned, unowned = await asyncio.gather(
        asyncio.gather(*(list_served(env, kind, namespace, f"{REGISTRY_LABEL}={name}") for kind in kinds)),
        list_unowned(env, namespace, name),
    )
    doomed = []
    for item in (item for items in owned for item in items):
        meta = item["metadata"]
        if (item["kind"], meta.get("namespace"), meta["name"]) in wanted:
            continue
        if (meta.get("annotations") or {}).get(RETAIN_ANNOTATION) == "true":
            continue  # data (PVC, generated credentials) outlives a configuration switch
        if not any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or []):
            continue  # not ours to delete
        doomed.append(item)
    doomed.extend(
        item
        for item in unowned
        if (item["kind"], item["metadata"].get("namespace"), item["metadata"]["name"]) not in wanted
    )
    return await delete(env, doomed, released)


async def finalize(env: Env, namespace: str, name: str, released: Released) -> list[str]:
    """The finalizer's work: delete what owner references cannot collect."""
    return await delete(env, await list_unowned(env, namespace, name), released)


async def delete(env: Env, doomed: list[Obj], released: Released) -> list[str]:
    """Delete ``doomed`` (each only while it still has the uid we listed); their kind/name."""
    metas = [o["metadata"] for o in doomed]
    await asyncio.gather(
        *(
            env.kube.delete(kind_of(o), m.get("namespace"), m["name"], m["uid"])
            for o, m in zip(doomed, metas, strict=True)
        )
    )
    for obj in doomed:
        released(ref_of(obj))
    return [f"{o['kind']}/{m['name']}" for o, m in zip(doomed, metas, strict=True)]


async def list_unowned(env: Env, namespace: str, name: str) -> list[Obj]:
    """Our cluster-scoped and cross-namespace objects (found by name and namespace labels)."""
    groups = env.capabilities().groups
    selector = f"{REGISTRY_LABEL}={name},{NAMESPACE_LABEL}={namespace}"
    kinds = served(UNOWNED, groups)
    listings = await asyncio.gather(*(list_served(env, kind, None, selector) for kind in kinds))
    return [item for items in listings for item in items]


async def list_served(env: Env, kind: Kind, namespace: str | None, selector: str) -> list[Obj]:
    """A kind's objects; none when its optional API went away since the last discovery (its
    CRD's deletion deleted them all), and discovery is asked to catch up."""
    try:
        return await env.kube.list(kind, namespace, selector)
    except ApiError as exc:
        if optional_api_gone(exc):
            env.rediscover()
            return []
        raise


def optional_api_gone(exc: ApiError) -> bool:
    """A 404 from an optional API's group: discovery listed it, and it was uninstalled since."""
    return exc.not_found and exc.api_group in OPTIONAL_APIS
