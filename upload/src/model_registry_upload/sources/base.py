"""What every source produces: a list of files, each opened as a byte stream."""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import posixpath
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import requests
import urllib3

from ..config import ascii_digits
from ..errors import TransferError
from ..progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceFile:
    path: str
    """Relative POSIX path under the model root (sub-directories preserved)."""
    size: int
    open: Callable[[], BinaryIO]
    fingerprint: str | None = None
    """The content's identity from the source's own metadata, known before any byte is read
    (an S3 ETag, say): the same value always means the same bytes. ``None`` when the source
    has none; see :attr:`local_path`."""
    local_path: Path | None = None
    """Where the file is on a local disk (a mounted volume, or staged), so that reading it twice
    is cheap: a destination can hash it to learn whether it already holds it."""


def etag_fingerprint(etag: str, size: int, resource: str = "") -> str | None:
    """A :attr:`SourceFile.fingerprint` from a strong ETag, hashed so that nothing of the
    source's addresses ends up in the image; ``None`` for a weak or missing ETag, which does not
    identify the bytes. An HTTP ETag only means something for its own URL (``resource``); S3's
    is derived from the content (MD5s), so the same object copied elsewhere matches too."""
    etag = etag.strip()
    if not etag or etag.startswith("W/"):
        return None
    return "sha256:" + hashlib.sha256(f"etag {etag} size {size} of {resource}".encode()).hexdigest()


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


T = TypeVar("T")


def retry(what: str, fn: Callable[[], T], attempts: int = 5, delay: float = 0.5) -> T:
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except TransferError as exc:
            if getattr(exc, "status", 500) in (400, 401, 403, 404, 412, 416):
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


class BufferPool:
    """At most ``count`` buffers of ``size`` bytes, allocated on first use and then recycled.

    Every part that is being fetched, waits to be consumed or is being sent holds one buffer, so
    a transfer's buffers never take more than ``size * count`` bytes, whatever the model size, and
    the allocator never sees part-sized allocations come and go (which is what made the resident
    set several times the bytes actually in flight).
    """

    WAIT = 600.0
    """Seconds :meth:`acquire` waits for a buffer before giving up (a consumer holding every
    buffer while it waits for the next part would otherwise hang)."""

    def __init__(self, size: int, count: int) -> None:
        self.size = size
        self.count = max(1, count)
        self.allocated = 0
        self.in_use = 0
        self.peak_in_use = 0
        self._free: list[bytearray] = []
        self._cond = threading.Condition()

    def _take(self) -> bytearray | None:
        if self._free:
            buf = self._free.pop()
        elif self.allocated < self.count:
            buf = bytearray(self.size)
            self.allocated += 1
        else:
            return None
        self.in_use += 1
        self.peak_in_use = max(self.peak_in_use, self.in_use)
        return buf

    def try_acquire(self) -> bytearray | None:
        with self._cond:
            return self._take()

    def acquire(self) -> bytearray:
        with self._cond:
            deadline = time.monotonic() + self.WAIT
            while (buf := self._take()) is None:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    raise TransferError(
                        f"no transfer buffer freed in {self.WAIT:.0f} s ({self.count} of {self.size} bytes in use)"
                    )
            return buf

    def release(self, buf: bytearray) -> None:
        with self._cond:
            self._free.append(buf)
            self.in_use -= 1
            self._cond.notify()


class Chunk:
    """Bytes of a transfer as a view; :meth:`release` hands the buffer behind it back to its pool.

    The view must not be used after :meth:`release` (the buffer is refilled with other bytes)."""

    __slots__ = ("_release", "view")

    def __init__(self, view: memoryview, release: Callable[[], None] | None = None) -> None:
        self.view = view
        self._release = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


def read_chunks(stream: BinaryIO, size: int, pool: BufferPool, what: str) -> Iterator[Chunk]:
    """Exactly ``size`` bytes of ``stream`` as chunks, without copying them where the stream can
    hand its own buffers over (:meth:`ParallelRangeReader.next_chunk`), else read into buffers of
    ``pool``. The consumer releases every chunk."""
    next_chunk = getattr(stream, "next_chunk", None)
    remaining = size
    while remaining > 0:
        if next_chunk is not None:
            chunk: Chunk | None = next_chunk()
            if chunk is None:
                raise TransferError(f"{what} ended early ({size - remaining} of {size} bytes)")
            if len(chunk.view) > remaining:
                chunk.view = chunk.view[:remaining]
        else:
            buf = pool.acquire()
            view = memoryview(buf)[: min(len(buf), remaining)]
            try:
                got = _readinto_full(stream, view)
            except OSError as exc:
                pool.release(buf)
                raise TransferError(f"{what}: read failed: {exc}") from None
            except BaseException:
                pool.release(buf)
                raise
            if not got:
                pool.release(buf)
                raise TransferError(f"{what} ended early ({size - remaining} of {size} bytes)")
            chunk = Chunk(view[:got], lambda buf=buf: pool.release(buf))  # type: ignore[misc]
        remaining -= len(chunk.view)
        yield chunk


def _readinto_full(stream: BinaryIO, view: memoryview) -> int:
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]  # every file object here has it
        if not n:
            break
        got += n
    return got


def check_range_answer(resp: requests.Response, start: int, length: int, what: str) -> None:
    """The answer to a ``Range: bytes=start-...`` request holds exactly ``length`` bytes from
    ``start`` (a server that ignores ``Range`` answers 200 with the whole object)."""
    body = resp.headers.get("Content-Length")
    whole = resp.status_code == 200 and start == 0
    if (resp.status_code != 206 and not whole) or (body is not None and ascii_digits(body) and int(body) != length):
        raise TransferError(
            f"{what}: bad answer to a ranged read at {start} (HTTP {resp.status_code}, {body} bytes for {length})"
        )


def response_readinto(resp: requests.Response, view: memoryview, what: str) -> int:
    """Read the body of a streamed response into ``view`` until it is full or the body ends.

    Reads straight from the socket into the buffer (``http.client``'s ``readinto``) when the
    response is a plain ``http.client`` one; otherwise (or for an encoded body, which only the
    raw read returns as sent) copies from ``raw.read``. Network errors become a retryable
    :class:`TransferError`."""
    raw = resp.raw
    fp = getattr(raw, "_fp", None)
    direct = isinstance(fp, http.client.HTTPResponse) and resp.headers.get("Content-Encoding", "identity") in (
        "",
        "identity",
    )
    got = 0
    try:
        while got < len(view):
            if direct:
                assert isinstance(fp, http.client.HTTPResponse)
                n = fp.readinto(view[got:])
            else:
                data = raw.read(min(len(view) - got, 1024 * 1024), decode_content=False)
                n = len(data)
                view[got : got + n] = data
            if not n:
                break
            got += n
        if direct and got == len(view) and fp is not None and fp.isclosed():
            raw.release_conn()  # body fully read: the connection goes back to the pool
    except (
        OSError,
        http.client.HTTPException,
        urllib3.exceptions.HTTPError,
        requests.exceptions.RequestException,
    ) as exc:
        raise TransferError(f"{what}: read failed after {got} bytes: {exc.__class__.__name__}: {exc}") from None
    return got


RangeFetchInto = Callable[[int, int, memoryview], None]
"""``(start, end, view)``: write bytes ``start..end`` inclusive into ``view`` (exactly that long)."""


class ParallelRangeReader(io.RawIOBase):
    """Sequential stream over a remote object fetched as parallel ranged reads.

    Each part is fetched into a buffer of ``pool`` (default: a pool of its own of
    ``parallelism + 1`` buffers of ``part_size``); at most ``parallelism`` parts are fetched
    ahead, and a part's buffer goes back to the pool once it is read, or, for a part handed over
    by :meth:`next_chunk`, once the consumer releases it. Memory is bounded by the pool, never by
    the object's size. ``fetch_into`` writes a range straight into the part's buffer.
    """

    def __init__(
        self,
        fetch_into: RangeFetchInto,
        size: int,
        part_size: int,
        parallelism: int,
        what: str,
        *,
        pool: BufferPool | None = None,
    ) -> None:
        self.fetch_into = fetch_into
        self.size = size
        self.parallelism = max(1, parallelism)
        self.buffers = pool if pool is not None else BufferPool(part_size, self.parallelism + 1)
        self.part_size = min(part_size, self.buffers.size)
        self.what = what
        self.pool = shared_pool(self.parallelism)
        self.next_offset = 0
        self.pending: deque[tuple[Future[None], bytearray, int]] = deque()
        self._current: memoryview | None = None
        self._current_buf: bytearray | None = None
        self.pos = 0
        self._fill()

    def readable(self) -> bool:
        return True

    def _fill(self, block: bool = False) -> None:
        while len(self.pending) < self.parallelism and self.next_offset < self.size:
            buf = self.buffers.acquire() if block and not self.pending else self.buffers.try_acquire()
            if buf is None:
                return
            start = self.next_offset
            end = min(start + self.part_size, self.size) - 1
            self.next_offset = end + 1
            try:
                fut = self.pool.submit(
                    retry,
                    f"{self.what} bytes {start}-{end}",
                    self._part(start, end, memoryview(buf)[: end - start + 1]),
                )
            except BaseException:
                self.buffers.release(buf)
                raise
            self.pending.append((fut, buf, end - start + 1))

    def _part(self, start: int, end: int, view: memoryview) -> Callable[[], None]:
        def fetch() -> None:
            self.fetch_into(start, end, view)

        return fetch

    def _drop_current(self) -> None:
        if self._current_buf is not None:
            self._current = None
            self.buffers.release(self._current_buf)
            self._current_buf = None

    def _ensure(self) -> bool:
        """A current part with unread bytes (waits for the next one); False at the end."""
        if self._current is not None and self.pos < len(self._current):
            return True
        self._drop_current()
        if not self.pending:
            self._fill(block=True)
            if not self.pending:
                return False
        fut, buf, length = self.pending.popleft()
        try:
            fut.result()
        except BaseException:
            self.buffers.release(buf)
            raise
        self._current, self._current_buf, self.pos = memoryview(buf)[:length], buf, 0
        self._fill()
        return True

    def next_chunk(self) -> Chunk | None:
        """The unread rest of the current part, handed over without a copy (``None`` at the end).

        The caller must :meth:`Chunk.release` it; until then its buffer is not reused."""
        if not self._ensure():
            return None
        assert self._current is not None
        assert self._current_buf is not None
        buf, view = self._current_buf, self._current[self.pos :]
        self._current, self._current_buf, self.pos = None, None, 0
        return Chunk(view, lambda: self.buffers.release(buf))

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        if not len(out) or not self._ensure():
            return 0
        assert self._current is not None
        n = min(len(out), len(self._current) - self.pos)
        out[:n] = self._current[self.pos : self.pos + n]
        self.pos += n
        if self.pos >= len(self._current):
            self._drop_current()
            self._fill()
        return n

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            chunks: list[bytes] = []
            while chunk := self.read(self.part_size):
                chunks.append(chunk)
            return b"".join(chunks)
        if not size or not self._ensure():
            return b""
        assert self._current is not None
        data = bytes(self._current[self.pos : self.pos + size])
        self.pos += len(data)
        if self.pos >= len(self._current):
            self._drop_current()
            self._fill()
        return data

    def close(self) -> None:
        self._drop_current()
        while self.pending:
            fut, buf, _ = self.pending.popleft()
            fut.cancel()
            # a running fetch still writes into its buffer: give it back only once it is done
            fut.add_done_callback(lambda _f, buf=buf: self.buffers.release(buf))  # type: ignore[misc]
        super().close()


class Source:
    """A model source: :meth:`files` lists what to copy (may stage archives on disk)."""

    def files(self) -> list[SourceFile]:
        raise NotImplementedError

    def check(self, files: list[SourceFile]) -> None:
        """Read access check before anything is created (default: nothing to check)."""

    def describe(self) -> str:
        raise NotImplementedError
