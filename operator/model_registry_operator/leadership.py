"""Leader election on a ``coordination.k8s.io/v1`` Lease, with controller-runtime's semantics.

Two replicas run; the one holding the Lease reconciles, the other waits. The rules are client-go's
``leaderelection`` package (what controller-runtime's ``--leader-elect`` uses), so our Lease is
the same object, read the same way, as upstream's:

- **Acquire**: every retry period (with up to 20 % jitter), read the Lease. Take it when it does
  not exist, has no holder (released), or its record has not changed for ``leaseDurationSeconds``
  *as timed by this process's own monotonic clock since it last saw the record change* (never
  by comparing ``renewTime`` with the local wall clock, so clock skew between nodes does not
  matter). The write carries the ``resourceVersion`` read, so of two contenders one wins.
- **Renew**: every retry period, write ``renewTime``. A renewal that has not succeeded within the
  renew deadline, or a Lease found held by someone else, loses leadership, and the process exits
  at once (controller-runtime's ``os.Exit(1)``): only leaving the process guarantees that no
  worker thread still sends a write, and the restarted container comes back as a standby.
- **Safety margin**: the renew deadline is counted from the *start* of the last successful renewal
  (client-go counts from its end, plus a retry period), and it is enforced by a watchdog thread
  that needs neither the event loop nor the API server. The renewal reached the API server after
  that start, so a standby cannot take the Lease before ``lease duration - renew deadline``
  (5 s with the defaults) after the old leader has exited.
- **Release**: on a clean shutdown (SIGTERM), once the reconcilers have stopped and their worker
  threads are idle, the holder clears ``holderIdentity`` (``leaseDurationSeconds: 1``, as
  client-go's ``ReleaseOnCancel``), so the standby takes over at its next retry instead of
  waiting for the lease to expire.

The Lease calls go through their own API client and their own thread, never the reconcilers'
pool: a burst of reconciles queueing in the shared executor must not delay a renewal into a lost
leadership. Written by hand: the ``kubernetes`` Python client's ``leaderelection`` module is
synchronous, has no renew deadline separate from the lease duration, cannot release, and its
callbacks run in its own thread with no way to stop a running event loop safely; kopf's peering
is a pause protocol between operators, not a lease.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import Gauge

from .kube import ApiError, Kube

log = logging.getLogger(__name__)

LEADER = Gauge(
    "model_registry_operator_leader",
    "1 while this replica is the one reconciling (it holds the leader election Lease, "
    "or runs without leader election), 0 while it is a standby.",
)
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
JITTER = 1.2  # client-go's JitterFactor for the acquire loop
LEASE_API = "/apis/coordination.k8s.io/v1"


class LeaderElectionError(Exception):
    """Leader election cannot start (e.g. no namespace for its Lease)."""


@dataclass(frozen=True)
class LeaseConfig:
    name: str
    namespace: str
    identity: str
    lease_duration: float
    renew_deadline: float
    retry_period: float


def lease_namespace(configured: str, namespace_file: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The configured namespace, else the Pod's own (controller-runtime's rule)."""
    if configured:
        return configured
    try:
        return namespace_file.read_text().strip()
    except OSError:
        raise LeaderElectionError(
            "leader election needs a namespace for its Lease: not running in a cluster "
            f"({namespace_file} is not there), so set LEADER_ELECTION_NAMESPACE "
            "or --leader-elect-resource-namespace"
        ) from None


def new_identity() -> str:
    """``<hostname>_<uuid>`` as controller-runtime's: the Pod name, unique across restarts."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _microtime() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def exit_process(reason: str) -> None:
    """Leave at once, as controller-runtime does when leadership is lost."""
    log.critical("leader election lost: %s; exiting so that this replica writes nothing more", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)


class _Watchdog:
    """Calls ``on_expired`` from its own thread once the armed deadline (monotonic) passes."""

    def __init__(self, on_expired: Callable[[str], None], what: str) -> None:
        self._on_expired = on_expired
        self._what = what
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float) -> None:
        with self._cond:
            self._deadline = deadline
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="leader-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._deadline = None
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        self._on_expired(self._what)


class LeaderElector:
    """Acquire, keep and release one Lease (see the module docstring for the rules)."""

    def __init__(self, kube: Kube, config: LeaseConfig, on_lost: Callable[[str], None] = exit_process) -> None:
        self.kube = kube
        self.config = config
        self._on_lost = on_lost
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="leader-election")
        self._observed: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._watchdog = _Watchdog(
            on_lost, f"the Lease was not renewed within the renew deadline ({config.renew_deadline:g}s)"
        )
        self._lost = False
        self._failing = False
        self.leading = False

    @property
    def path(self) -> str:
        return f"{LEASE_API}/namespaces/{self.config.namespace}/leases/{self.config.name}"

    @property
    def holder(self) -> str:
        """The holder in the record last read (empty when released or unknown)."""
        return str((self._observed or {}).get("holderIdentity") or "")

    # -- one attempt (in the elector's own thread) ----------------------------------------

    def _observe(self, spec: dict[str, Any]) -> None:
        if spec != self._observed:
            self._observed = dict(spec)
            self._observed_at = time.monotonic()

    def _expired(self) -> bool:
        duration = float((self._observed or {}).get("leaseDurationSeconds") or 0)
        return self._observed_at + duration <= time.monotonic()

    def _spec(self, previous: dict[str, Any], now: str) -> dict[str, Any]:
        mine = previous.get("holderIdentity") == self.config.identity
        return {
            **previous,
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.config.lease_duration)),
            "renewTime": now,
            "acquireTime": previous.get("acquireTime") if mine else now,
            "leaseTransitions": int(previous.get("leaseTransitions") or 0) + (0 if mine else 1),
        }

    def _try_acquire_or_renew(self, timeout: float) -> bool:
        now = _microtime()
        try:
            lease = self.kube.request_sync("GET", self.path, timeout=timeout)
        except ApiError as exc:
            if not exc.not_found:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                "spec": {**self._spec({}, now), "leaseTransitions": 0},
            }
            try:
                created = self.kube.request_sync(
                    "POST", f"{LEASE_API}/namespaces/{self.config.namespace}/leases", body=body, timeout=timeout
                )
            except ApiError as exc2:
                if exc2.conflict:  # another replica created it first
                    return False
                raise
            self._observe(created.get("spec") or {})
            return True
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.config.identity and not self._expired():
            return False
        lease["spec"] = self._spec(spec, now)
        try:  # carries the resourceVersion read: of two contenders, one gets 409
            updated = self.kube.request_sync("PUT", self.path, body=lease, timeout=timeout)
        except ApiError as exc:
            if exc.conflict:
                return False
            raise
        self._observe(updated.get("spec") or {})
        return True

    async def _attempt(self, deadline: float) -> bool:
        timeout = max(0.1, deadline - time.monotonic())
        loop = asyncio.get_running_loop()
        try:
            ok = await loop.run_in_executor(self._executor, self._try_acquire_or_renew, timeout)
        except Exception as exc:  # noqa: BLE001 - unreachable, 5xx, 403: try again next period
            # Once per outage at WARNING, then every retry period at DEBUG.
            level = logging.DEBUG if self._failing else logging.WARNING
            self._failing = True
            log.log(level, "Lease %s/%s: %s", self.config.namespace, self.config.name, exc)
            return False
        if self._failing:
            self._failing = False
            log.info("Lease %s/%s: the API server answers again", self.config.namespace, self.config.name)
        return ok

    # -- the loops -------------------------------------------------------------------------

    def _wait_before_next_try(self) -> float:
        wait = self.config.retry_period * (1 + random.random() * (JITTER - 1))  # noqa: S311 - jitter
        if self.holder and self.holder != self.config.identity:
            # No need to wait past the moment the holder's lease runs out.
            duration = float((self._observed or {}).get("leaseDurationSeconds") or 0)
            expires_in = self._observed_at + duration - time.monotonic()
            wait = min(wait, max(0.05, expires_in + 0.05))
        return wait

    async def acquire(self) -> None:
        """Return once this replica holds the Lease (a standby until then)."""
        LEADER.set(0)
        log.info(
            "Waiting to acquire the leader election Lease %s/%s as %s",
            self.config.namespace,
            self.config.name,
            self.config.identity,
        )
        reported = ""
        while True:
            started = time.monotonic()
            if await self._attempt(started + self.config.renew_deadline):
                self._watchdog.arm(started + self.config.renew_deadline)
                self.leading = True
                LEADER.set(1)
                log.info("Acquired the leader election Lease %s/%s", self.config.namespace, self.config.name)
                return
            if self.holder and self.holder != reported:
                reported = self.holder
                log.info("Standby: the Lease is held by %s", reported)
            await asyncio.sleep(self._wait_before_next_try())

    async def keep(self) -> None:
        """Renew forever; on losing the Lease, ``on_lost`` (by default the process exits)."""
        while not self._lost:
            await asyncio.sleep(self.config.retry_period)
            started = time.monotonic()
            if await self._attempt(started + self.config.renew_deadline):
                self._watchdog.arm(started + self.config.renew_deadline)
            elif self.holder and self.holder != self.config.identity:
                self._lose(f"the Lease is now held by {self.holder}")

    def _lose(self, reason: str) -> None:
        self._lost = True
        self.leading = False
        LEADER.set(0)
        self._watchdog.disarm()
        self._on_lost(reason)

    async def release(self) -> None:
        """Hand the Lease back (only when this replica still holds it)."""
        if not self.leading:
            return
        self.leading = False
        LEADER.set(0)

        def release_sync() -> None:
            lease = self.kube.request_sync("GET", self.path, timeout=self.config.renew_deadline)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.config.identity:
                return
            now = _microtime()
            lease["spec"] = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": now}
            self.kube.request_sync("PUT", self.path, body=lease, timeout=self.config.renew_deadline)

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, release_sync)
        except Exception as exc:  # noqa: BLE001 - the Lease then simply expires
            log.warning("Could not release the Lease %s/%s: %s", self.config.namespace, self.config.name, exc)
        else:
            log.info("Released the leader election Lease %s/%s", self.config.namespace, self.config.name)
        finally:
            self._watchdog.disarm()
            self._executor.shutdown(wait=False)


async def lead(
    elector: LeaderElector | None,
    work: Callable[[], Awaitable[None]],
    drain: Callable[[], Awaitable[bool]],
    stopping: asyncio.Event,
) -> None:
    """Run ``work`` (the reconcilers) only while leading; without an elector, at once.

    ``stopping`` is set on SIGTERM / SIGINT while still a standby (once ``work`` runs, it handles
    the signals itself and returns). After ``work`` returns, ``drain`` waits for the writes still
    in flight; only when it reports them done is the Lease released, so the next leader's first
    write never races one of ours."""
    if elector is None:
        LEADER.set(1)
        await work()
        return
    acquiring = asyncio.ensure_future(elector.acquire())
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({acquiring, stop}, return_when=asyncio.FIRST_COMPLETED)
    if not acquiring.done():
        acquiring.cancel()
        log.info("Stopping as a standby")
        return
    stop.cancel()
    acquiring.result()
    keeping = asyncio.ensure_future(elector.keep())
    try:
        if not stopping.is_set():  # else the signal came as the Lease was acquired
            await work()
    finally:
        keeping.cancel()
        if await drain():
            await elector.release()
        else:
            log.warning("Writes still in flight at shutdown: the Lease is left to expire")
