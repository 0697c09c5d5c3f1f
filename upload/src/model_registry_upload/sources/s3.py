"""S3 source: one object, or every object under a ``/``-bounded prefix."""

from __future__ import annotations

import logging
from typing import BinaryIO, cast

from ..config import S3Location
from ..errors import TransferError
from ..s3 import S3Client
from .base import BufferPool, ParallelRangeReader, Source, SourceFile, etag_fingerprint, safe_relpath

log = logging.getLogger(__name__)


class S3Source(Source):
    def __init__(
        self, loc: S3Location, *, part_size: int, parallelism: int, timeout: float, verify: bool | str = True
    ) -> None:
        self.loc = loc
        self.client = S3Client(loc, timeout=timeout, verify=verify, pool=max(10, parallelism * 2), side="source")
        self.part_size = part_size
        self.parallelism = parallelism
        # one pool for every object: the parts of the next object can be fetched while the last
        # part of the previous one is still being sent, and the bound holds across objects
        self.buffers = BufferPool(part_size, parallelism + 1)
        self._keys: dict[str, str] = {}

    def describe(self) -> str:
        return f"s3://{self.loc.bucket}/{self.loc.key}"

    def _file(self, key: str, rel: str, size: int, etag: str) -> SourceFile:
        bucket = self.loc.bucket

        what = f"s3://{bucket}/{key}"

        def fetch_into(start: int, end: int, view: memoryview) -> None:
            got = self.client.read_into(bucket, key, start, view)
            if got != len(view):
                raise TransferError(f"S3 short read on {what} at {start}: {got} of {len(view)} bytes")

        def opener() -> BinaryIO:
            reader = ParallelRangeReader(fetch_into, size, self.part_size, self.parallelism, what, pool=self.buffers)
            return cast(BinaryIO, reader)

        self._keys[rel] = key
        return SourceFile(rel, size, opener, fingerprint=etag_fingerprint(etag, size))

    def check(self, files: list[SourceFile]) -> None:
        """One 1-byte ranged read of the first non-empty object: catches AccessDenied before any write."""
        first = next((f for f in files if f.size > 0), None)
        if first is not None:
            key = self._keys[first.path]
            self.client.get_range(self.loc.bucket, key, 0, 0)

    def files(self) -> list[SourceFile]:
        bucket, key = self.loc.bucket, self.loc.key.lstrip("/")
        if key and not key.endswith("/"):
            single = self.client.stat(bucket, key)
            if single is not None:
                name = key.rsplit("/", 1)[-1]
                log.info("S3 source is the single object s3://%s/%s (%d bytes)", bucket, key, single.size)
                return [self._file(key, safe_relpath(name, "S3 key"), single.size, single.etag)]
            key += "/"
        out: list[SourceFile] = []
        for obj in self.client.list_objects(bucket, key):
            if obj.key.endswith("/"):
                continue  # directory marker
            rel = safe_relpath(obj.key[len(key) :], f"S3 key {obj.key!r}")
            out.append(self._file(obj.key, rel, obj.size, obj.etag))
        if not out:
            raise TransferError(
                f"S3 NoSuchKey: no object s3://{bucket}/{self.loc.key} and nothing under s3://{bucket}/{key}"
            )
        log.info("S3 source: %d objects under s3://%s/%s", len(out), bucket, key)
        return out
