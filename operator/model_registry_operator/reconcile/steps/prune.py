"""Step 4: delete what the registry owns and no longer renders; at deletion (the finalizer), what
no owner reference can collect.

Namespaced children carry an owner reference to the registry and its name label; cluster-scoped
and cross-namespace ones (UNOWNED) carry the registry's name and namespace as labels instead, and
pruning and the finalizer find them by those labels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ...kube import CONFIG_MAP, DEPLOYMENT, SECRET, ApiError, Kind, Obj, kind_of, lookup
from ...platform.capabilities import OPTIONAL_APIS
from ...render.features import NAMESPACE_LABEL
from ...render.modelregistry import REGISTRY_LABEL, RETAIN_ANNOTATION
from ..claims import Ref, ref_of
from . import Env

# Kinds a registry may own in its namespace; anything labelled as ours and no longer
# rendered is deleted.
PRUNABLE = [
    lookup("v1", "ServiceAccount"),
    lookup("v1", "Service"),
    SECRET,
    CONFIG_MAP,
    lookup("v1", "PersistentVolumeClaim"),
    DEPLOYMENT,
    lookup("networking.k8s.io/v1", "NetworkPolicy"),
    lookup("rbac.authorization.k8s.io/v1", "Role"),
    lookup("rbac.authorization.k8s.io/v1", "RoleBinding"),
]
ROUTE = lookup("route.openshift.io/v1", "Route")
AUTH_CONFIG = lookup("authorino.kuadrant.io/v1beta3", "AuthConfig")
# Kinds of the optional APIs a registry may own in its namespace, by the API group serving them.
PRUNABLE_OPTIONAL = [
    ROUTE,
    lookup("networking.istio.io/v1beta1", "Gateway"),
    lookup("networking.istio.io/v1beta1", "VirtualService"),
    lookup("networking.istio.io/v1beta1", "DestinationRule"),
    lookup("security.istio.io/v1beta1", "AuthorizationPolicy"),
    AUTH_CONFIG,
    lookup("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
]
# Cluster-scoped objects and objects in other namespaces: no owner reference can collect them,
# so they carry the registry's name and namespace as labels; pruning and the finalizer find
# them by those labels.
UNOWNED = [
    lookup("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    lookup("user.openshift.io/v1", "Group"),
    ROUTE,
    lookup("gateway.networking.k8s.io/v1", "HTTPRoute"),
]

Released = Callable[[Ref], None]  # an object is gone: registries waiting for its name may take it


async def prune(env: Env, namespace: str, name: str, uid: str, desired: list[Obj], released: Released) -> list[str]:
    """Delete our objects that ``desired`` no longer holds; their kind/name."""
    wanted = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in desired}
    groups = env.capabilities().groups
    kinds = PRUNABLE + [k for k in PRUNABLE_OPTIONAL if group_of(k) in groups]
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
    kinds = [k for k in UNOWNED if group_of(k) in groups or group_of(k) == "rbac.authorization.k8s.io"]
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


def group_of(kind: Kind) -> str:
    return kind.api_version.rpartition("/")[0]


def optional_api_gone(exc: ApiError) -> bool:
    """A 404 from an optional API's group: discovery listed it, and it was uninstalled since."""
    return exc.not_found and exc.api_group in OPTIONAL_APIS
