"""The probe endpoints: ``/healthz`` (liveness) and ``/readyz`` (readiness), on one aiohttp server.

- ``/healthz`` answers 200 whenever the event loop does: it is served by that loop, so a loop
  blocked or dead fails the probe and the kubelet restarts the container. Nothing else is
  checked, so a slow API server never gets a healthy operator restarted.
- ``/readyz`` answers 200 when every check passes, 500 otherwise, with one line per check in the
  Kubernetes format (``[+]name ok`` / ``[-]name failed: reason``):

  ``apiserver``  the API server answers its own ``/readyz`` (one request at a time, the answer
                 reused for a second, 2 s timeout, in a thread of its own);
  ``leader``     ``leader`` or ``standby``: both pass. A standby that reported not-ready would
                 never become ready while the leader lives, so a RollingUpdate of two replicas
                 (which waits for each new Pod to be ready) would stall, and a PodDisruptionBudget
                 would count the standby as already disrupted and block every drain;
  ``watches``    on the leader (or without leader election): kopf's startup is done and the
                 watches of ModelRegistry and ModelUploadJob have listed what exists (their
                 initial LIST, kopf's "caches synced"); a standby watches nothing and passes.

Which replica leads is told by the ``leader`` line, the ``model_registry_operator_leader``
gauge and the Lease's ``holderIdentity``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from aiohttp import web

from .kube import ApiError, Kube

log = logging.getLogger(__name__)

API_CHECK_TIMEOUT = 2.0
API_CHECK_CACHE_SECONDS = 1.0


@dataclass
class Readiness:
    """What ``/readyz`` reports, filled in by the runner and kopf's watches."""

    required_watches: Collection[str]
    """The resources (``plural.group``) whose initial listing makes the leader ready."""
    leading: Callable[[], bool] = lambda: True
    standby: Callable[[], bool] = lambda: False
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """kopf's startup handlers have run (its ready flag)."""
    listed: set[str] = field(default_factory=set)
    webhooks: Callable[[], str | None] | None = None
    """Why the admission webhook server does not answer yet (None: it does); unset: webhooks off.
    Every replica serves them, so a replica is not ready until it does (as controller-runtime's
    webhook readiness check)."""

    def watch_listed(self, resource: str) -> None:
        self.listed.add(resource)


class ApiServerCheck:
    """GET the API server's ``/readyz``, one request at a time, its answer reused for a second."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="health-api")
        self._last: tuple[float, str | None] = (float("-inf"), None)
        self._running: asyncio.Future[str | None] | None = None

    def _probe(self) -> str | None:
        try:
            self.kube.request_sync("GET", "/readyz", timeout=API_CHECK_TIMEOUT)
        except ApiError as exc:
            return f"the API server answered {exc.status}"
        except Exception as exc:  # noqa: BLE001 - any transport error means "not reachable"
            return f"the API server is not reachable: {type(exc).__name__}"
        return None

    async def __call__(self) -> str | None:
        """None when reachable, else why not."""
        at, problem = self._last
        if time.monotonic() - at < API_CHECK_CACHE_SECONDS:
            return problem
        if self._running is None:
            self._running = asyncio.get_running_loop().run_in_executor(self._executor, self._probe)
        running = self._running
        try:
            problem = await asyncio.shield(running)
        finally:
            if self._running is running and running.done():
                self._running = None
        self._last = (time.monotonic(), problem)
        return problem

    def close(self) -> None:
        self._executor.shutdown(wait=False)


class HealthServer:
    def __init__(self, host: str, port: int, readiness: Readiness, api_check: ApiServerCheck) -> None:
        self.host = host or None  # "" (":8081"): every interface
        self.port = port
        self.readiness = readiness
        self.api_check = api_check
        self._runner: web.AppRunner | None = None

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, _: web.Request) -> web.Response:
        r = self.readiness
        checks: list[tuple[str, str | None, str]] = []
        checks.append(("apiserver", await self.api_check(), ""))
        if r.webhooks is not None:
            checks.append(("webhooks", r.webhooks(), ""))
        if r.standby():
            checks.append(("leader", None, " (standby)"))
            checks.append(("watches", None, " (standby: not watching)"))
        else:
            checks.append(("leader", None, " (leader)" if r.leading() else ""))
            missing = sorted(set(r.required_watches) - r.listed)
            if not r.started.is_set():
                checks.append(("watches", "the operator is starting", ""))
            elif missing:
                checks.append(("watches", "not listed yet: " + ", ".join(missing), ""))
            else:
                checks.append(("watches", None, ""))
        lines = [
            f"[+]{name} ok{note}" if problem is None else f"[-]{name} failed: {problem}"
            for name, problem, note in checks
        ]
        ok = all(problem is None for _, problem, _ in checks)
        lines.append("readyz check passed" if ok else "readyz check failed")
        return web.Response(text="\n".join(lines) + "\n", status=200 if ok else 500)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("Serving /healthz and /readyz on %s:%d", self.host or "*", self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self.api_check.close()
