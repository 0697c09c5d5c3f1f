"""S3 destination: every model file under the key prefix, multipart with parallel parts."""

from __future__ import annotations

import logging
import posixpath
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import quote

from ..config import S3Location
from ..errors import TransferError
from ..progress import Progress
from ..s3 import S3Client
from ..sources.base import CountingReader, SourceFile

log = logging.getLogger(__name__)


class S3Upload:
    def __init__(self, loc: S3Location, *, part_size: int, parallelism: int, timeout: float,
                 verify: bool | str = True) -> None:
        self.loc = loc
        self.prefix = loc.key.strip("/")
        self.client = S3Client(loc, timeout=timeout, verify=verify, pool=max(10, parallelism * 2))
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

    def _one(self, pool: ThreadPoolExecutor, f: SourceFile, progress: Progress | None) -> None:
        key = self._key(f.path)
        bucket = self.loc.bucket
        stream = CountingReader(f.open(), progress)
        try:
            if f.size <= self.part_size:
                data = stream.read(f.size) if f.size else b""
                if len(data) != f.size:
                    raise TransferError(f"source file {f.path} ended early ({len(data)} of {f.size} bytes)")
                self.client.put(bucket, key, data)
                return
            upload_id = self.client.create_multipart(bucket, key)
            slots = threading.BoundedSemaphore(self.parallelism)
            futures: list[Future[str]] = []
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
                etags = [fut.result() for fut in futures]
                self.client.complete_multipart(bucket, key, upload_id, etags)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                self.client.abort_multipart(bucket, key, upload_id)
                raise
        finally:
            stream.close()
        log.info("uploaded s3://%s/%s (%d bytes)", bucket, key, f.size)
