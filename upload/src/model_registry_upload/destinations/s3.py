"""S3 destination: every model file under the key prefix, multipart with parallel parts.

An object the prefix already holds is not uploaded again when it is the same file: same size,
and either the same source fingerprint (recorded in the object's metadata by the upload that
wrote it) or, for a file on a local disk, the ETag this upload would give it (the MD5 of a
single PUT, the MD5 of the parts' MD5s for a multipart one of the same part size). So a retried
Job, or the same model pushed again, moves only what is missing or changed.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

from ..config import S3Location
from ..errors import TransferError
from ..progress import Progress
from ..s3 import Part, S3Client, S3Error
from ..sources.base import CountingReader, SourceFile

log = logging.getLogger(__name__)

FINGERPRINT_META = "source-fingerprint"
"""Object metadata (``x-amz-meta-source-fingerprint``): the source file's fingerprint."""


def multipart_etag(path: Path, size: int, part_size: int) -> str:
    """The ETag S3 gives the file at ``path`` uploaded as :class:`S3Upload` does (no quotes)."""
    if size <= part_size:
        h = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as fh:
            while chunk := fh.read(1024 * 1024):
                h.update(chunk)
        return h.hexdigest()
    digests = b""
    parts = 0
    with path.open("rb") as fh:
        while True:
            h = hashlib.md5(usedforsecurity=False)
            left = part_size
            while left and (chunk := fh.read(min(left, 1024 * 1024))):
                h.update(chunk)
                left -= len(chunk)
            if left == part_size:
                break
            digests += h.digest()
            parts += 1
    return hashlib.md5(digests, usedforsecurity=False).hexdigest() + f"-{parts}"


class S3Upload:
    def __init__(
        self, loc: S3Location, *, part_size: int, parallelism: int, timeout: float, verify: bool | str = True
    ) -> None:
        self.loc = loc
        self.prefix = loc.key.strip("/")
        self.client = S3Client(loc, timeout=timeout, verify=verify, pool=max(10, parallelism * 2), side="destination")
        self.part_size = part_size
        self.parallelism = parallelism

    def uri(self) -> str:
        out = f"s3://{self.loc.bucket}/{self.prefix}"
        query = []
        if self.loc.endpoint:
            query.append("endpoint=" + quote(self.loc.endpoint, safe=""))
        if self.loc.region:
            query.append("defaultRegion=" + quote(self.loc.region, safe=""))
        return out + ("?" + "&".join(query) if query else "")

    def check(self) -> None:
        """Fail early on a wrong bucket or credentials (list the destination prefix)."""
        next(iter(self.client.list_objects(self.loc.bucket, self.prefix + "/")), None)

    def _key(self, rel: str) -> str:
        return posixpath.join(self.prefix, rel) if self.prefix else rel

    def push(self, files: list[SourceFile], progress: Progress | None) -> None:
        with ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="s3-put") as pool:
            for f in sorted(files, key=lambda x: x.path):
                self._one(pool, f, progress)

    def _already_there(self, f: SourceFile, key: str) -> bool:
        if not f.fingerprint and f.local_path is None:
            return False
        try:
            obj = self.client.stat(self.loc.bucket, key)
        except S3Error as exc:  # e.g. an identity that may write but not read: upload
            log.debug("cannot read s3://%s/%s (%s): uploading it", self.loc.bucket, key, exc)
            return False
        if obj is None or obj.size != f.size:
            return False
        if f.fingerprint:
            return obj.metadata.get(FINGERPRINT_META) == f.fingerprint
        assert f.local_path is not None
        return bool(obj.etag) and obj.etag.strip('"') == multipart_etag(f.local_path, f.size, self.part_size)

    def _one(self, pool: ThreadPoolExecutor, f: SourceFile, progress: Progress | None) -> None:
        key = self._key(f.path)
        bucket = self.loc.bucket
        if self._already_there(f, key):
            log.info("s3://%s/%s is already this file (%d bytes): not uploaded again", bucket, key, f.size)
            if progress is not None:
                progress.add(f.size)
            return
        metadata = {FINGERPRINT_META: f.fingerprint} if f.fingerprint else None
        stream = CountingReader(f.open(), progress)
        try:
            if f.size <= self.part_size:
                data = stream.read(f.size) if f.size else b""
                if len(data) != f.size:
                    raise TransferError(f"source file {f.path} ended early ({len(data)} of {f.size} bytes)")
                self.client.put(bucket, key, data, metadata)
                return
            upload_id = self.client.create_multipart(bucket, key, metadata)
            slots = threading.BoundedSemaphore(self.parallelism)
            futures: list[Future[Part]] = []
            try:
                number = 0
                remaining = f.size
                while remaining > 0:
                    chunk = stream.read(min(self.part_size, remaining))
                    while len(chunk) < min(self.part_size, remaining):
                        more = stream.read(min(self.part_size, remaining) - len(chunk))
                        if not more:
                            raise TransferError(f"source file {f.path} ended early")
                        chunk += more
                    remaining -= len(chunk)
                    number += 1
                    slots.acquire()
                    fut = pool.submit(self.client.upload_part, bucket, key, upload_id, number, chunk)
                    fut.add_done_callback(lambda _f: slots.release())
                    futures.append(fut)
                    failed = [x for x in futures if x.done() and x.exception() is not None]
                    if failed:
                        raise failed[0].exception()  # type: ignore[misc]
                self.client.complete_multipart(bucket, key, upload_id, [fut.result() for fut in futures])
            except BaseException:
                for fut in futures:
                    fut.cancel()
                self.client.abort_multipart(bucket, key, upload_id)
                raise
        finally:
            stream.close()
        log.info("uploaded s3://%s/%s (%d bytes)", bucket, key, f.size)
