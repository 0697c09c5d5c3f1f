"""Byte progress with a steady log cadence, optionally reported elsewhere (the CR's status)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

TRANSFERRING = "Transferring"
REGISTERING = "Registering"


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


@dataclass(frozen=True)
class ProgressSnapshot:
    stage: str
    done: int
    total: int | None
    rate: float

    def line(self, label: str) -> str:
        if self.total:
            pct = 100.0 * self.done / self.total
            return f"{label}: {human(self.done)} / {human(self.total)} ({pct:.1f}%), {human(self.rate)}/s"
        return f"{label}: {human(self.done)}, {human(self.rate)}/s"

    def status(self) -> dict[str, Any]:
        """The ``status.progress`` merge patch of the ModelUploadJob."""
        progress: dict[str, Any] = {
            "stage": self.stage,
            "bytesTransferred": self.done,
            "bytesPerSecond": int(self.rate),
            "updateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if self.total is not None:
            progress["bytesTotal"] = self.total
            progress["percent"] = min(100, self.done * 100 // self.total) if self.total else 100
        return {"status": {"progress": progress}}


Reporter = Callable[[ProgressSnapshot], object]


class Progress:
    """Thread-safe counter; a daemon thread logs ``done/total`` and the rate every interval and
    hands the same snapshot to ``report`` (which must not raise)."""

    def __init__(
        self, total: int | None, interval: float = 5.0, label: str = "transfer", report: Reporter | None = None
    ) -> None:
        self.total = total
        self.done = 0
        self.interval = interval
        self.label = label
        self.report = report
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._last_done = 0
        self._last_time = self._start
        self._thread: threading.Thread | None = None

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n

    def snapshot(self) -> ProgressSnapshot:
        """Bytes so far and the rate since the previous snapshot."""
        now = time.monotonic()
        with self._lock:
            done = self.done
        rate = (done - self._last_done) / max(now - self._last_time, 1e-6)
        self._last_done, self._last_time = done, now
        return ProgressSnapshot(TRANSFERRING, done, self.total, rate)

    def line(self) -> str:
        return self.snapshot().line(self.label)

    def _run(self) -> None:
        if self.report is not None:
            self.report(ProgressSnapshot(TRANSFERRING, 0, self.total, 0.0))
        while not self._stop.wait(self.interval):
            snap = self.snapshot()
            log.info("%s", snap.line(self.label))
            if self.report is not None:
                self.report(snap)

    def __enter__(self) -> Progress:
        self._start = self._last_time = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        elapsed = max(time.monotonic() - self._start, 1e-6)
        log.info(
            "%s finished: %s in %.1f s (%s/s average)",
            self.label,
            human(self.done),
            elapsed,
            human(self.done / elapsed),
        )
        if self.report is not None and exc_type is None:
            self.report(ProgressSnapshot(REGISTERING, self.done, self.total, self.done / elapsed))
