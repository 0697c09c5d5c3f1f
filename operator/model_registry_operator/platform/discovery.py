"""Discover the optional APIs through the API server's discovery endpoint, and keep it current.

APIs come and go at run time (an operator installs Istio, someone removes the Gateway API
CRDs): :class:`CapabilityWatcher` re-reads discovery periodically and whenever a CRD changes,
and tells its listener when the answer changed so the affected registries re-reconcile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..kinds import CONFIG_API, INGRESS_CONFIG, OPTIONAL_APIS
from ..kube import ApiError, Kube
from .capabilities import PLAIN_KUBERNETES, Capabilities

log = logging.getLogger(__name__)

CRD_SETTLE_SECONDS = (1.0, 5.0)  # a new CRD's group shows up in discovery shortly after it is Established

Listener = Callable[[Capabilities, Capabilities], Awaitable[None]]


def groups_of(api_group_list: dict[str, Any]) -> set[str]:
    """The optional groups named in an APIGroupList (``GET /apis``)."""
    names = {g.get("name", "") for g in api_group_list.get("groups") or []}
    return {name for name in OPTIONAL_APIS if name in names}


def cluster_domain(ingress: dict[str, Any] | None) -> str:
    """The apps domain of ``ingresses.config.openshift.io/cluster``: appsDomain first, then domain."""
    spec = (ingress or {}).get("spec") or {}
    return str(spec.get("appsDomain") or spec.get("domain") or "")


async def discover(kube: Kube) -> Capabilities:
    """One discovery round trip (two on OpenShift, for the cluster domain)."""
    groups = groups_of(await kube.request("GET", "/apis"))
    domain = ""
    if CONFIG_API in groups:
        try:
            domain = cluster_domain(await kube.get(INGRESS_CONFIG, None, "cluster"))
        except ApiError as exc:  # forbidden or not served (yet): no domain, the setting may give one
            log.warning("cannot read ingresses.config.openshift.io/cluster: %s", exc)
    return Capabilities.from_groups(groups, domain)


class CapabilityWatcher:
    """The current capabilities, refreshed periodically and on demand."""

    def __init__(self, kube: Kube, interval: float, listener: Listener | None = None) -> None:
        self.kube = kube
        self.interval = interval
        self.listener = listener
        self.current: Capabilities = PLAIN_KUBERNETES
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self._waiting: set[float] = set()

    def __call__(self) -> Capabilities:
        return self.current

    async def refresh(self) -> bool:
        """Re-read discovery; True (and the listener told) when something changed."""
        async with self._lock:
            try:
                found = await discover(self.kube)
            except Exception:
                log.warning("API discovery failed; keeping %s", self.current, exc_info=True)
                return False
            if found == self.current:
                return False
            before, self.current = self.current, found
            log.info("optional APIs changed: %s -> %s", sorted(before.groups), sorted(found.groups))
        if self.listener is not None:
            await self.listener(before, found)
        return True

    def soon(self) -> None:
        """Refresh a little later (a CRD changed; discovery needs a moment to catch up).

        Bursts (an operator installing a dozen CRDs, the initial listing) collapse into one
        refresh per delay.
        """
        for delay in CRD_SETTLE_SECONDS:
            if delay in self._waiting:
                continue
            self._waiting.add(delay)
            task = asyncio.get_running_loop().create_task(self._later(delay))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._waiting.discard(delay)
        await self.refresh()

    async def run(self) -> None:
        """Refresh forever (cancel to stop)."""
        while True:
            await asyncio.sleep(self.interval)
            await self.refresh()
