"""What every source produces: a list of files, each opened as a byte stream."""

from __future__ import annotations

import io
import logging
import posixpath
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import TransferError
from ..progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceFile:
    path: str
    """Relative POSIX path under the model root (sub-directories preserved)."""
    size: int
    open: Callable[[], BinaryIO]


def safe_relpath(path: str, what: str) -> str:
    """Normalize a relative path; reject absolute paths and ``..`` components."""
    candidate = path.replace("\\", "/")
    if candidate.startswith("/") or (len(candidate) > 1 and candidate[1] == ":"):
        raise TransferError(f"{what}: absolute path {path!r} is not allowed")
    parts = [p for p in candidate.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise TransferError(f"{what}: path {path!r} escapes the model directory")
    if not parts:
        raise TransferError(f"{what}: empty path {path!r}")
    return posixpath.join(*parts)


class CountingReader(io.RawIOBase):
    """Wrap a stream and add every byte read to a :class:`Progress`."""

    def __init__(self, inner: BinaryIO, progress: Progress | None) -> None:
        self.inner = inner
        self.progress = progress

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        if self.progress is not None and data:
            self.progress.add(len(data))
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def retry(what: str, fn: Callable[[], bytes], attempts: int = 5, delay: float = 0.5) -> bytes:
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except TransferError as exc:
            if getattr(exc, "status", 500) in (400, 401, 403, 404, 416):
                raise
            last = exc
        except OSError as exc:
            last = exc
        if attempt < attempts:
            log.warning("%s failed (attempt %d/%d): %s; retrying", what, attempt, attempts, last)
            time.sleep(delay * attempt)
    raise TransferError(f"{what} failed after {attempts} attempts: {last}")


_shared_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def shared_pool(workers: int) -> ThreadPoolExecutor:
    global _shared_pool
    with _pool_lock:
        if _shared_pool is None or _shared_pool._max_workers < workers:
            _shared_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="range")
        return _shared_pool


class ParallelRangeReader(io.RawIOBase):
    """Sequential stream over a remote object fetched as parallel ranged reads.

    At most ``parallelism`` parts of ``part_size`` bytes are in flight or buffered, so memory
    stays below ``part_size * (parallelism + 1)``.
    """

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, part_size: int, parallelism: int,
                 what: str) -> None:
        self.fetch = fetch
        self.size = size
        self.part_size = part_size
        self.parallelism = max(1, parallelism)
        self.what = what
        self.pool = shared_pool(self.parallelism)
        self.next_offset = 0
        self.pending: deque[Future[bytes]] = deque()
        self.buffer = b""
        self.pos = 0
        self._fill()

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while len(self.pending) < self.parallelism and self.next_offset < self.size:
            start = self.next_offset
            end = min(start + self.part_size, self.size) - 1
            self.next_offset = end + 1
            self.pending.append(self.pool.submit(retry, f"{self.what} bytes {start}-{end}", self._part(start, end)))

    def _part(self, start: int, end: int) -> Callable[[], bytes]:
        def fetch() -> bytes:
            return self.fetch(start, end)

        return fetch

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks: list[bytes] = []
            while True:
                chunk = self.read(self.part_size)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        while not self.buffer and self.pending:
            self.buffer = self.pending.popleft().result()
            self.pos = 0
            self._fill()
        if not self.buffer:
            return b""
        data = self.buffer[self.pos : self.pos + size]
        self.pos += len(data)
        if self.pos >= len(self.buffer):
            self.buffer = b""
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        for fut in self.pending:
            fut.cancel()
        self.pending.clear()
        super().close()


class Source:
    """A model source: :meth:`files` lists what to copy (may stage archives on disk)."""

    def files(self) -> list[SourceFile]:
        raise NotImplementedError

    def check(self, files: list[SourceFile]) -> None:
        """Read access check before anything is created (default: nothing to check)."""

    def describe(self) -> str:
        raise NotImplementedError
