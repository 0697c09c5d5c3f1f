"""URI source: ``http(s)://`` files and archives, and ``hf://org/model[:revision]``.

A plain file is streamed with parallel ranged GETs when the server supports ``Range``
(sequential with resume otherwise). A zip/tar archive is downloaded into the storage path
(resumable), unpacked safely, and the unpacked files are the model.
"""

from __future__ import annotations

import http.client
import logging
import os
import posixpath
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from ..config import ascii_digits, label
from ..errors import TransferError, certificate_failure, tls_verification_failed
from .archive import is_archive, unpack
from .base import (
    BufferPool,
    ParallelRangeReader,
    Source,
    SourceFile,
    check_range_answer,
    etag_fingerprint,
    response_readinto,
    retry,
    safe_relpath,
)
from .pvc import local_files

log = logging.getLogger(__name__)

HTTP_ATTEMPTS = 5
"""Tries of each GET (probe, part, download) before the upload fails; a download resumes."""


class HttpError(TransferError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def public_url(url: str) -> str:
    """The URL without credentials or query string, for log lines and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def refuse_untrusted(url: str, exc: BaseException) -> None:
    """Raise the configuration error (not retried) when ``exc`` is a refused server certificate."""
    reason = certificate_failure(exc)
    if reason is not None:
        parts = urlsplit(url)
        server = f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
        raise tls_verification_failed(f"source URI server {server}", reason, label("source_uri_ca_bundle")) from None


@dataclass(frozen=True)
class Probe:
    size: int | None
    ranges: bool
    """Whether the server answers ``Range`` requests."""
    etag: str
    """The strong ETag (quotes included), empty when the server gave none or a weak one."""


class HttpFetcher:
    def __init__(
        self, *, timeout: float, headers: dict[str, str] | None = None, pool: int = 10, verify: bool | str = True
    ) -> None:
        self.timeout = timeout
        self.verify = verify
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(headers or {})

    def _get(self, url: str, headers: dict[str, str], stream: bool = False) -> requests.Response:
        return self.session.get(url, headers=headers, stream=stream, timeout=self.timeout, verify=self.verify)

    def _check(self, resp: requests.Response, url: str) -> None:
        if resp.status_code >= 400:
            raise HttpError(f"GET {public_url(url)} failed: HTTP {resp.status_code} {resp.reason}", resp.status_code)

    def probe(self, url: str) -> Probe:
        """Size, Range support and validator, from a one-byte ranged GET (retried like a part)."""
        return retry(f"GET {public_url(url)}", lambda: self._probe(url), HTTP_ATTEMPTS)

    def _probe(self, url: str) -> Probe:
        try:
            resp = self._get(url, {"Range": "bytes=0-0", "Accept-Encoding": "identity"}, stream=True)
        except requests.exceptions.RequestException as exc:
            refuse_untrusted(url, exc)
            raise TransferError(f"GET {public_url(url)} failed: {exc.__class__.__name__}") from None
        with resp:
            self._check(resp, url)
            etag = resp.headers.get("ETag", "").strip()
            strong = etag if etag and not etag.startswith("W/") else ""
            if resp.status_code == 206:
                total = resp.headers.get("Content-Range", "").rsplit("/", 1)[-1]
                return Probe(int(total) if ascii_digits(total) else None, True, strong)
            length = resp.headers.get("Content-Length")
            return Probe(int(length) if length and ascii_digits(length) else None, False, strong)

    def get_range_into(self, url: str, start: int, end: int, view: memoryview, etag: str = "") -> None:
        """Bytes ``start..end`` inclusive, read straight into ``view``; with ``etag``, only from
        that version of the resource (``If-Match``: parts of two versions are never joined)."""
        headers = {"Range": f"bytes={start}-{end}", "Accept-Encoding": "identity"}
        if etag:
            headers["If-Match"] = etag
        try:
            resp = self._get(url, headers, stream=True)
        except requests.exceptions.RequestException as exc:
            refuse_untrusted(url, exc)
            raise TransferError(f"GET {public_url(url)} failed: {exc.__class__.__name__}") from None
        with resp:
            if resp.status_code == 412:  # not retried: every further read would be refused too
                raise HttpError(
                    f"GET {public_url(url)}: the file changed on the server while it was read (ETag no longer {etag})",
                    412,
                )
            self._check(resp, url)
            check_range_answer(resp, start, len(view), f"GET {public_url(url)}")
            got = response_readinto(resp, view, f"GET {public_url(url)}")
        if got != len(view):
            raise TransferError(f"GET {public_url(url)}: short ranged answer at {start} ({got} of {len(view)} bytes)")

    def download(self, url: str, dest: Path, probe: Probe, attempts: int = HTTP_ATTEMPTS) -> None:
        """Download to ``dest``, resuming with ``Range`` after an interruption; ``If-Range``
        makes a server whose file changed meanwhile send all of it again, not the rest."""
        part = dest.with_name(dest.name + ".part")
        for attempt in range(1, attempts + 1):
            pos = part.stat().st_size if part.exists() and probe.ranges else 0
            # identity: offsets are the file's own bytes, which a resume's Range counts
            headers = {"Accept-Encoding": "identity"}
            if pos:
                headers["Range"] = f"bytes={pos}-"
                if probe.etag:
                    headers["If-Range"] = probe.etag
            try:
                with self._get(url, headers, stream=True) as resp:
                    if resp.status_code == 416 and pos:
                        break  # already complete
                    self._check(resp, url)
                    mode = "ab" if pos and resp.status_code == 206 else "wb"
                    with part.open(mode) as out:
                        # read1: every byte that arrived is on disk when the connection drops
                        while chunk := resp.raw.read1(64 * 1024, decode_content=True):
                            out.write(chunk)
                break
            except HttpError as exc:
                if exc.status < 500:
                    raise
                err: Exception = exc
            except (
                requests.exceptions.RequestException,
                urllib3.exceptions.HTTPError,
                http.client.HTTPException,
                OSError,
            ) as exc:
                refuse_untrusted(url, exc)
                err = exc
            if attempt == attempts:
                raise TransferError(
                    f"download of {public_url(url)} failed after {attempts} attempts: {err.__class__.__name__}"
                )
            log.warning("download of %s interrupted (%s), resuming", public_url(url), err.__class__.__name__)
            time.sleep(0.5 * attempt)
        os.replace(part, dest)


class UriSource(Source):
    def __init__(
        self,
        uri: str,
        *,
        storage_path: Path,
        part_size: int,
        parallelism: int,
        timeout: float,
        ca_bundle: Path | None = None,
    ) -> None:
        self.verify: bool | str = str(ca_bundle) if ca_bundle else True
        self.uri = uri
        self.storage_path = storage_path
        self.part_size = part_size
        self.parallelism = parallelism
        self.timeout = timeout
        self.buffers = BufferPool(part_size, parallelism + 1)  # shared by the files (see S3Source)

    def describe(self) -> str:
        if self.uri.startswith("hf://"):
            return self.uri.split("?", 1)[0]
        return public_url(self.uri)

    def files(self) -> list[SourceFile]:
        if self.uri.startswith("hf://"):
            return self._hf_files()
        fetcher = HttpFetcher(timeout=self.timeout, pool=max(10, self.parallelism * 2), verify=self.verify)
        name = unquote(posixpath.basename(urlsplit(self.uri).path))
        if not name:
            raise TransferError(f"no filename contained in URI {public_url(self.uri)}")
        rel = safe_relpath(name, "URI")
        if is_archive(rel):
            return self._stage_archive(fetcher, self.uri, rel, fetcher.probe(self.uri))
        return [self._http_file(fetcher, self.uri, rel)]

    def _http_file(self, fetcher: HttpFetcher, url: str, rel: str) -> SourceFile:
        probe = fetcher.probe(url)
        size = probe.size
        if size is not None and probe.ranges:

            def opener() -> BinaryIO:
                assert size is not None
                return cast(
                    BinaryIO,
                    ParallelRangeReader(
                        lambda s, e, v: fetcher.get_range_into(url, s, e, v, probe.etag),
                        size,
                        self.part_size,
                        self.parallelism,
                        public_url(url),
                        pool=self.buffers,
                    ),
                )

            return SourceFile(rel, size, opener, fingerprint=etag_fingerprint(probe.etag, size, public_url(url)))
        # no Range support or unknown size: stage on disk (resume is impossible otherwise)
        staged = self.storage_path / "download" / rel
        staged.parent.mkdir(parents=True, exist_ok=True)
        fetcher.download(url, staged, probe)
        return SourceFile(rel, staged.stat().st_size, lambda: staged.open("rb"), local_path=staged)

    def _stage_archive(self, fetcher: HttpFetcher, url: str, rel: str, probe: Probe) -> list[SourceFile]:
        download_dir = self.storage_path / "download"
        download_dir.mkdir(parents=True, exist_ok=True)
        archive = download_dir / posixpath.basename(rel)
        log.info("downloading archive %s", public_url(url))
        fetcher.download(url, archive, probe)
        target = self.storage_path / "model"
        if target.exists():
            shutil.rmtree(target)
        log.info("unpacking %s", archive.name)
        unpack(archive, target)
        archive.unlink()
        return local_files(target, "unpacked archive")

    def _hf_files(self) -> list[SourceFile]:
        spec = self.uri[len("hf://") :]
        repo, _, revision = spec.partition(":")
        revision = revision or "main"
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise TransferError(f"hf URI must look like hf://org/model[:revision], got {self.uri!r}")
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        token = os.environ.get("HF_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        fetcher = HttpFetcher(
            timeout=self.timeout, headers=headers, pool=max(10, self.parallelism * 2), verify=self.verify
        )
        api = f"{endpoint}/api/models/{repo}/revision/{revision}"
        try:
            resp = fetcher.session.get(api, timeout=self.timeout, verify=self.verify)
        except requests.exceptions.RequestException as exc:
            refuse_untrusted(api, exc)
            raise TransferError(f"Hugging Face API {public_url(api)} unreachable: {exc.__class__.__name__}") from None
        fetcher._check(resp, api)
        siblings = resp.json().get("siblings") or []
        out: list[SourceFile] = []
        for sib in siblings:
            name = sib.get("rfilename")
            if not isinstance(name, str):
                continue
            rel = safe_relpath(name, "Hugging Face file")
            url = f"{endpoint}/{repo}/resolve/{revision}/{name}"
            out.append(self._http_file(fetcher, url, rel))
        if not out:
            raise TransferError(f"Hugging Face repository {repo}@{revision} has no files")
        return out
