"""The gauges of :mod:`.metrics` read from the reconcilers' per-object records, at scrape time.

A scrape runs in a worker thread while the event loop changes those records: each source takes
a snapshot of the queue's items (one ``list()`` of a dict, which no other thread can interleave
with) and reads only immutable values from it (the packed status, the probe memo, strings)."""

from __future__ import annotations

from collections import Counter

from ..names import AVAILABLE
from ..reconcile.errors import BUG, INVALID, TRANSIENT
from ..reconcile.modeluploadjob import UploadState
from ..reconcile.queue import WorkQueue
from ..reconcile.steps import RegistryState, unpack
from .metrics import DATABASES, RECONCILE_ERRORS, RECONCILES, REGISTRIES, UPLOADS


def registries_by_availability(queue: WorkQueue[RegistryState]) -> dict[tuple[str, ...], float]:
    """(status, reason) of the Available condition -> registries (those with one written)."""
    counts: Counter[tuple[str, ...]] = Counter()
    for _key, state in queue.items():
        packed = state.status
        if packed is None:
            continue
        conditions = unpack(packed).get("conditions") or []
        available = next((c for c in conditions if c.get("type") == AVAILABLE), None)
        if available is not None:
            counts[(str(available.get("status", "")), str(available.get("reason", "")))] += 1
    return dict(counts)


def databases_by_reason(queue: WorkQueue[RegistryState]) -> dict[tuple[str, ...], float]:
    """The reason of each registry's last database probe -> registries."""
    counts: Counter[tuple[str, ...]] = Counter()
    for _key, state in queue.items():
        memo = state.probe
        if memo is not None:
            counts[(memo.state.reason,)] += 1
    return dict(counts)


def uploads_by_phase(queue: WorkQueue[UploadState]) -> dict[tuple[str, ...], float]:
    counts: Counter[tuple[str, ...]] = Counter((state.phase,) for _key, state in queue.items() if state.phase)
    return dict(counts)


def observe(registries: WorkQueue[RegistryState], uploads: WorkQueue[UploadState]) -> None:
    """Point the gauges at these reconcilers' records (the operator's; the last call wins)."""
    for kind in (registries.resource, uploads.resource):  # every series from the start (see increase())
        RECONCILES.labels(kind)
        for category in (TRANSIENT, INVALID, BUG):
            RECONCILE_ERRORS.labels(kind, category)
    REGISTRIES.source(lambda: registries_by_availability(registries))
    DATABASES.source(lambda: databases_by_reason(registries))
    UPLOADS.source(lambda: uploads_by_phase(uploads))
