"""kopf registrations keeping the cluster's optional APIs current (discovery at start-up,
periodically, and whenever a CRD of one of those API groups changes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import kopf

from ..kinds import CRD, INGRESS_CONFIG, OPTIONAL_APIS
from ..platform.discovery import CapabilityWatcher


def register(registry: kopf.OperatorRegistry, watcher: CapabilityWatcher) -> None:
    tasks: set[asyncio.Task[None]] = set()

    @kopf.on.startup(registry=registry, id="discover-apis")
    async def discover(**_: Any) -> None:
        await watcher.refresh()  # before any registry is reconciled
        tasks.add(asyncio.get_running_loop().create_task(watcher.run()))

    @kopf.on.cleanup(registry=registry, id="stop-discovery")
    async def stop(**_: Any) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def optional_api(spec: Mapping[str, Any], **_: Any) -> bool:
        return spec.get("group") in OPTIONAL_APIS

    @kopf.on.event(*CRD.resource, registry=registry, when=optional_api, id="apis")
    async def crd_changed(**_: Any) -> None:
        watcher.soon()

    def cluster_ingress(name: str | None, **_: Any) -> bool:
        return name == "cluster"

    @kopf.on.event(*INGRESS_CONFIG.resource, registry=registry, when=cluster_ingress, id="domain")
    async def domain_changed(**_: Any) -> None:
        watcher.soon()  # the cluster's apps domain feeds the Route hosts
