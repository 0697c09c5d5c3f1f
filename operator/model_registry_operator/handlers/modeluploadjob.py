"""kopf registrations for ModelUploadJob: thin, everything funnels into the reconciler.

Jobs and Pods are followed with ``on.event`` (no kopf state is written onto them) and mapped
to their ModelUploadJob by the name annotation / label the render puts on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ..kinds import MODEL_REGISTRY, MODEL_UPLOAD_JOB, watched_by
from ..names import MODEL_UPLOAD_JOB_KIND, UPLOAD_JOB_LABEL
from ..names import UPLOAD_JOB_NAME_ANNOTATION as NAME_ANNOTATION
from ..reconcile.modeluploadjob import UploadJobReconciler, is_finished

RESOURCE = MODEL_UPLOAD_JOB.resource
CHILDREN = [kind.resource for kind in watched_by(MODEL_UPLOAD_JOB_KIND)]


def register(registry: kopf.OperatorRegistry, reconciler: UploadJobReconciler, resync_seconds: float) -> None:
    """Register every ModelUploadJob handler on ``registry``."""

    async def reconcile(namespace: str | None, name: str | None) -> None:
        assert namespace is not None  # namespaced resource
        assert name is not None
        await reconciler.run(namespace, name)  # reports its failures and retries them with backoff

    @kopf.on.create(*RESOURCE, registry=registry, id="reconcile")
    @kopf.on.update(*RESOURCE, registry=registry, id="reconcile", field="spec")
    @kopf.on.resume(*RESOURCE, registry=registry, id="reconcile")
    async def changed(namespace: str | None, name: str | None, **_: Any) -> None:
        await reconcile(namespace, name)

    @kopf.timer(*RESOURCE, registry=registry, interval=resync_seconds, initial_delay=resync_seconds, id="follow")
    async def follow(namespace: str | None, name: str | None, status: Mapping[str, Any], **_: Any) -> None:
        """Retry uploads waiting for their registry or Secrets; catch up on missed child events."""
        if namespace and name and not is_finished(dict(status)):
            reconciler.schedule(namespace, name)

    @kopf.on.delete(*RESOURCE, registry=registry, optional=True, id="forget")
    async def forget(namespace: str | None, name: str | None, **_: Any) -> None:
        if namespace and name:
            reconciler.forget(namespace, name)

    async def child_changed(
        namespace: str | None, labels: Mapping[str, str], annotations: Mapping[str, str], **_: Any
    ) -> None:
        owner = annotations.get(NAME_ANNOTATION) or labels.get(UPLOAD_JOB_LABEL)
        if owner and namespace:
            reconciler.schedule(namespace, owner)

    for group, version, plural in CHILDREN:
        kopf.on.event(
            group, version, plural, registry=registry, labels={UPLOAD_JOB_LABEL: kopf.PRESENT}, id=f"upload-{plural}"
        )(child_changed)

    @kopf.on.event(*MODEL_REGISTRY.resource, registry=registry, id="upload-registries")
    async def registry_changed(namespace: str | None, **_: Any) -> None:
        if namespace:
            reconciler.schedule_waiting(namespace)
