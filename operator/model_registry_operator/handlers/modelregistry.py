"""kopf registrations for ModelRegistry: thin, everything funnels into the reconciler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ..api.common import GROUP
from ..api.validation import parse_spec
from ..reconcile.modelregistry import RegistryReconciler
from ..render.database import referenced_keys
from ..render.modelregistry import MANAGED_BY, REGISTRY_LABEL

RESOURCE = (GROUP, "v1beta1", "modelregistries")
OURS = {"app.kubernetes.io/managed-by": MANAGED_BY}
# Owned children whose changes (including deletion by hand) trigger a reconcile.
CHILD_RESOURCES = [
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "serviceaccounts"),
    ("", "v1", "pods"),
    ("discovery.k8s.io", "v1", "endpointslices"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("", "v1", "persistentvolumeclaims"),
]


def register(registry: kopf.OperatorRegistry, reconciler: RegistryReconciler, resync_seconds: float) -> None:
    """Register every ModelRegistry handler on ``registry``."""

    async def reconcile(namespace: str | None, name: str | None, **_: Any) -> None:
        assert namespace is not None  # namespaced resource
        assert name is not None
        try:
            result = await reconciler.run(namespace, name)
        except Exception as exc:  # transient API trouble: kopf retries with a delay
            raise kopf.TemporaryError(f"reconcile failed: {exc}", delay=5) from exc
        if result.configuration_error:
            # The condition says what is wrong; a spec change or a referenced object
            # appearing triggers the next attempt.
            raise kopf.PermanentError(result.configuration_error)

    kopf.on.resume(*RESOURCE, registry=registry, id="reconcile")(reconcile)
    kopf.on.create(*RESOURCE, registry=registry, id="reconcile")(reconcile)
    kopf.on.update(*RESOURCE, registry=registry, id="reconcile", field="spec")(reconcile)

    @kopf.timer(*RESOURCE, registry=registry, interval=resync_seconds, initial_delay=resync_seconds, id="drift")
    async def drift(namespace: str | None, name: str | None, **_: Any) -> None:
        assert namespace is not None
        assert name is not None
        reconciler.schedule(namespace, name)

    @kopf.on.delete(*RESOURCE, registry=registry, optional=True, id="forget")
    async def forget(namespace: str | None, name: str | None, **_: Any) -> None:
        assert namespace is not None
        assert name is not None
        reconciler.forget(namespace, name)

    async def child_changed(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        owner = labels.get(REGISTRY_LABEL)
        if owner and namespace:
            reconciler.schedule(namespace, owner)

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
        async def handler(namespace: str | None, name: str | None, references: kopf.Index[Any, str], **_: Any) -> None:
            if not namespace or not name:
                return
            for registry_name in references.get((kind, namespace, name), []):
                reconciler.schedule(namespace, registry_name)

        return handler

    kopf.on.event("", "v1", "secrets", registry=registry, id="referenced-secret")(referenced_by("secret"))
    kopf.on.event("", "v1", "configmaps", registry=registry, id="referenced-configmap")(referenced_by("configmap"))
