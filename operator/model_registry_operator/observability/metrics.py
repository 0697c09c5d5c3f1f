"""The operator's Prometheus series, all on prometheus_client's default registry (beside its
process and Python collectors, and the leader gauge of the leader election).

Counters and the histogram are updated where things happen (the work queue, the failure
taxonomy, the upload reconcile); the gauges of what the operator knows about its objects are
:class:`Tally` collectors, computed at scrape time from the reconcilers' own records
(:mod:`.sources`), so there is no second copy of per-object state to keep in step.
docs/operations.md ("Metrics") lists every series and label.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "model_registry_operator"

RECONCILES = Counter(
    f"{PREFIX}_reconcile",
    "Reconciles run (full ones, status refreshes and clean-ups), by kind of object.",
    ["kind"],
)
RECONCILE_ERRORS = Counter(
    f"{PREFIX}_reconcile_errors",
    "Reconciles that failed and are retried with backoff, by kind of object and category "
    "(transient: API trouble; invalid: the API server refused what the spec rendered; bug: anything else).",
    ["kind", "category"],
)
RECONCILE_DURATION = Histogram(
    f"{PREFIX}_reconcile_duration_seconds",
    "How long reconciles took, by kind of object.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
QUEUE_DEPTH = Gauge(
    f"{PREFIX}_work_queue_depth",
    "Reconciles scheduled and not started yet (debouncing or waiting out a retry's backoff), by kind of object.",
    ["kind"],
)
UPLOAD_BYTES = Counter(
    f"{PREFIX}_upload_bytes",
    "Bytes the ModelUploadJobs' Pods reported transferred (status.progress.bytesTransferred), retries included.",
)
UPLOADS_FINISHED = Counter(
    f"{PREFIX}_model_upload_jobs_finished",
    "ModelUploadJobs this operator saw end, by the phase they ended in (Succeeded, Failed).",
    ["phase"],
)
for _phase in ("Succeeded", "Failed"):  # present from the start: increase() sees the first one
    UPLOADS_FINISHED.labels(_phase)


class Tally(Collector):
    """A gauge family computed at scrape time: ``source()`` returns ``{label values: value}``.

    prometheus_client's ``Gauge.set_function`` takes one callable per label set, known up front;
    these label sets (reasons, phases) come and go with the objects."""

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self._source: Callable[[], Mapping[tuple[str, ...], float]] = dict
        self._lock = threading.Lock()

    def source(self, source: Callable[[], Mapping[tuple[str, ...], float]]) -> None:
        with self._lock:
            self._source = source

    def describe(self) -> Iterable[Metric]:  # no collect() at registration
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labels)]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            source = self._source
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, value in sorted(source().items()):
            family.add_metric(list(values), value)
        yield family


def _tally(name: str, documentation: str, labels: list[str]) -> Tally:
    tally = Tally(f"{PREFIX}_{name}", documentation, labels)
    REGISTRY.register(tally)
    return tally


REGISTRIES = _tally(
    "model_registries",
    "ModelRegistries this operator reconciles, by the status and reason of their Available condition.",
    ["available", "reason"],
)
DATABASES = _tally(
    "model_registry_database_probes",
    "ModelRegistries by the result (reason) of the last live probe of their database: Connected, "
    "AuthenticationFailed, Unreachable, DatabaseMissing, TLSError, Unknown (not probed from here).",
    ["reason"],
)
UPLOADS = _tally(
    "model_upload_jobs",
    "ModelUploadJobs this operator follows, by status.phase.",
    ["phase"],
)


def count_upload_bytes(counted: int | None, transferred: object) -> int | None:
    """Count what an upload transferred since ``counted`` (what was counted of it so far); the new
    mark. The first sight of an upload that has transferred bytes only sets the mark: the operator
    restarted, and must not count again what its predecessor did. A retried attempt that starts
    over is counted from zero."""
    if not isinstance(transferred, int) or isinstance(transferred, bool):
        return 0 if counted is None else counted  # nothing transferred yet
    if counted is not None:
        UPLOAD_BYTES.inc(transferred - counted if transferred >= counted else transferred)
    return transferred
