"""kopf registrations for ModelRegistry: thin, everything funnels into the reconciler."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import kopf

from ..api.validation import parse_spec
from ..kinds import AUTH_CONFIG, CONFIG_MAP, MODEL_REGISTRY, ROUTE, SECRET, watched_by
from ..names import MANAGED_BY, MANAGED_BY_LABEL, MODEL_REGISTRY_KIND, NAMESPACE_LABEL, REGISTRY_LABEL
from ..reconcile.modelregistry import RegistryReconciler
from ..render.database import referenced_keys

RESOURCE = MODEL_REGISTRY.resource
OURS = {MANAGED_BY_LABEL: MANAGED_BY}
# Watched children: what the status is computed from (the Deployment, its pods, the Service's
# endpoint slices, Routes, AuthConfigs) and the Service users connect to (see kinds.py).
# Optional APIs: kopf watches them only while the cluster serves them.
CHILD_RESOURCES = [kind.resource for kind in watched_by(MODEL_REGISTRY_KIND)]
# Children whose status feeds a condition (Route admission, AuthConfig readiness).
STATUS_KINDS = {ROUTE.kind, AUTH_CONFIG.kind}


def register(registry: kopf.OperatorRegistry, reconciler: RegistryReconciler, resync_seconds: float) -> None:
    """Register every ModelRegistry handler on ``registry``."""
    tasks: set[asyncio.Task[None]] = set()

    # Creation, spec changes and the operator's start are all "a generation not reconciled yet":
    # one event handler decides (see RegistryReconciler.registry_event), so kopf keeps no diff
    # base and patches nothing onto the registry but its finalizer.
    # kopf puts its finalizer (FINALIZER, for the delete handler below) on a new registry in
    # parallel; objects that only the delete handler can clean up wait for it (see _reconcile).
    @kopf.on.event(*RESOURCE, registry=registry, id="reconcile")
    async def registry_changed(type: str | None, event: Mapping[str, Any], **_: Any) -> None:
        reconciler.registry_event(type, event.get("object") or {})

    @kopf.on.startup(registry=registry, id="drift-loop")
    async def start_drift_loop(**_: Any) -> None:
        tasks.add(asyncio.get_running_loop().create_task(reconciler.drift_loop(resync_seconds)))

    @kopf.on.cleanup(registry=registry, id="stop-drift-loop")
    async def stop_drift_loop(**_: Any) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Scheduled resyncs and retries too: else kopf waits 5 s for them before it exits, and a
        # standby waits that long for the Lease.
        await reconciler.queue.stop()

    @kopf.on.delete(*RESOURCE, registry=registry, id="finalize")
    async def finalize(namespace: str | None, name: str | None, **_: Any) -> None:
        """Owner references collect the namespaced children; this removes the rest
        (Group, ClusterRoleBinding, gateway Routes, HTTPRoute). RoleBindings that users
        made themselves carry none of our labels and stay."""
        assert namespace is not None
        assert name is not None
        try:
            await reconciler.finalize(namespace, name)  # within RECONCILE_TIMEOUT_SECONDS
        except Exception as exc:  # counted and logged by the taxonomy (a bug's traceback once)
            delay, failure = reconciler.queue.failed((namespace, name), None, exc)
            raise kopf.TemporaryError(f"cleanup failed: {failure.message}", delay=delay) from exc

    def child_event(event_type: str | None, body: Mapping[str, Any], namespace: str | None) -> None:
        child = dict(body)
        labels = child.get("metadata", {}).get("labels") or {}
        owner = labels.get(REGISTRY_LABEL)
        # Cluster-scoped and cross-namespace children name their registry's namespace.
        namespace = labels.get(NAMESPACE_LABEL) or namespace
        status_key = reconciler.observed.update(event_type, child)
        if event_type == "DELETED" and child.get("kind") and child.get("metadata", {}).get("name"):
            meta = child["metadata"]
            reconciler.release((child["kind"], meta.get("namespace"), meta["name"]))  # a name may be free now
        if not owner or not namespace:
            return
        if event_type == "DELETED" or reconciler.drifted(namespace, owner, child):
            reconciler.schedule(namespace, owner, full=True)  # deleted or edited by hand: apply again
        elif child.get("kind") in STATUS_KINDS:
            reconciler.schedule(namespace, owner, full=False)  # admitted / ready: a condition may change
        elif status_key is not None:
            reconciler.schedule(*status_key, full=False)  # only the status may change

    async def child_changed(type: str | None, body: kopf.Body, namespace: str | None, **_: Any) -> None:
        child_event(type, body, namespace)

    for group, version, plural in CHILD_RESOURCES:
        kopf.on.event(group, version, plural, registry=registry, labels=OURS, id=f"child-{plural}")(child_changed)

    @kopf.index(*RESOURCE, registry=registry, id="references")
    async def references(
        namespace: str | None, name: str | None, spec: Mapping[str, Any], **_: Any
    ) -> dict[tuple[str, str, str], str]:
        """(kind, namespace, object name) of every Secret / ConfigMap a registry reads -> registry."""
        parsed, _problems = parse_spec(dict(spec))
        if parsed is None or not namespace or not name:
            return {}
        refs = {}
        for kind, ref in referenced_keys(parsed):
            obj_name = ref if isinstance(ref, str) else ref.name
            refs[(kind, namespace, obj_name)] = name
        return refs

    def referenced_by(kind: str) -> Any:
        async def handler(
            type: str | None,
            body: kopf.Body,
            namespace: str | None,
            name: str | None,
            labels: Mapping[str, str],
            references: kopf.Index[Any, str],
            **_: Any,
        ) -> None:
            if not namespace or not name:
                return
            if labels.get(REGISTRY_LABEL):  # one of ours (generated credentials, connection)
                child_event(type, body, namespace)
            for registry_name in references.get((kind, namespace, name), []):
                reconciler.schedule(namespace, registry_name, urgent=True)  # may fix a failing one

        return handler

    kopf.on.event(*SECRET.resource, registry=registry, id="referenced-secret")(referenced_by("secret"))
    kopf.on.event(*CONFIG_MAP.resource, registry=registry, id="referenced-configmap")(referenced_by("configmap"))
