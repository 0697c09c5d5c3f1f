"""Byte progress with a steady log cadence."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """Thread-safe counter; a daemon thread logs ``done/total`` and the rate every interval."""

    def __init__(self, total: int | None, interval: float = 5.0, label: str = "transfer") -> None:
        self.total = total
        self.done = 0
        self.interval = interval
        self.label = label
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._last_done = 0
        self._last_time = self._start
        self._thread: threading.Thread | None = None

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n

    def line(self) -> str:
        now = time.monotonic()
        with self._lock:
            done = self.done
        rate = (done - self._last_done) / max(now - self._last_time, 1e-6)
        self._last_done, self._last_time = done, now
        if self.total:
            pct = 100.0 * done / self.total
            return f"{self.label}: {human(done)} / {human(self.total)} ({pct:.1f}%), {human(rate)}/s"
        return f"{self.label}: {human(done)}, {human(rate)}/s"

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            log.info("%s", self.line())

    def __enter__(self) -> Progress:
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        elapsed = max(time.monotonic() - self._start, 1e-6)
        log.info("%s finished: %s in %.1f s (%s/s average)", self.label, human(self.done), elapsed,
                 human(self.done / elapsed))
