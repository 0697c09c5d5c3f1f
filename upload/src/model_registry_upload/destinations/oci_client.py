"""OCI distribution API client: auth (basic, bearer challenge), manifests, blobs, uploads.

Hand-written because no maintained Python library streams a layer without a scratch copy.
The modelcar layer is a tar built on the fly from ranged source reads, its digest computed while
the chunks go out (POST, PATCH per chunk, PUT with the digest), so neither the layer nor the
model is ever on disk or whole in memory. What was tried (December 2026):

- ``oras`` 0.2.43 (oras-py): ``Registry.upload_blob`` takes a file path; its single-request
  upload reads the whole file into memory (``fd.read()``), the chunked one reads the file, and
  ``oci.NewLayer`` hashes that file before the upload (a second full read). ``push`` tars a
  directory into a temporary ``.tar.gz`` first. Every layer is a file: a full scratch copy.
- ``olot`` 1.2.1 (what upstream's async-upload job uses): adds layers to an OCI image layout
  directory on disk, then pushes it with skopeo, the oras CLI or oras-py: a scratch copy of the
  model plus its layer, and an external binary.
- ``docker-registry-client`` (last release 2017, unmaintained) and
  ``docker-registry-client-async`` (aiohttp, async only, where the transfer here runs in
  threads): not evaluated further.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin

import requests

from ..config import label
from ..errors import TransferError, UploadError, certificate_failure, tls_verification_failed
from ..httputil import session_with_retries

log = logging.getLogger(__name__)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])


class Chunk(Protocol):
    """Bytes to send and the hand-back of their buffer (``sources.base.Chunk``)."""

    view: memoryview

    def release(self) -> None: ...


class OciError(TransferError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImageRef:
    registry: str
    """Host[:port] as written by the user (``docker.io`` for Docker Hub)."""
    repository: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    @property
    def api_host(self) -> str:
        return "registry-1.docker.io" if self.registry == "docker.io" else self.registry

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_ref(ref: str) -> ImageRef:
    text = ref.removeprefix("oci://").removeprefix("docker://")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
    first, _, rest = text.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "docker.io", text
        if "/" not in path:
            path = "library/" + path
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
    if not tag and not digest:
        tag = "latest"
    if not re.fullmatch(r"[a-z0-9]+(?:[._-]+[a-z0-9]+|__)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*", path):
        raise OciError(f"invalid repository name {path!r} in image reference {ref!r}")
    return ImageRef(registry, path, tag, digest)


class RegistrySession:
    """One registry host. Tries https; when TLS verify is off, falls back to plain http."""

    def __init__(
        self,
        host: str,
        *,
        username: str | None,
        password: str | None,
        tls_verify: bool,
        timeout: float,
        ca_bundle: str | None = None,
        side: str = "destination",
    ) -> None:
        self.host = host
        self.side = side
        """``source`` or ``destination``: which parameters a TLS error message names."""
        self.username = username
        self.password = password
        self.tls_verify = tls_verify
        self.verify: bool | str = (ca_bundle or True) if tls_verify else False
        self.timeout = timeout
        self.scheme: str | None = None
        self.tokens: dict[str, str] = {}
        self.basic = False
        self.session = session_with_retries(methods=frozenset({"GET", "HEAD"}), pool=8)

    def base(self) -> str:
        if self.scheme is None:
            self.scheme = self._pick_scheme()
        return f"{self.scheme}://{self.host}"

    def _pick_scheme(self) -> str:
        try:
            self.session.get(f"https://{self.host}/v2/", timeout=self.timeout, verify=self.verify)
            return "https"
        except requests.exceptions.SSLError as exc:
            if self.tls_verify:
                raise self._tls_error(f"registry {self.host}", exc) from None
        except requests.exceptions.ConnectionError as exc:
            if self.tls_verify:
                raise OciError(f"registry {self.host} unreachable over https: {_reason(exc)}") from None
        try:
            self.session.get(f"http://{self.host}/v2/", timeout=self.timeout)
        except requests.exceptions.RequestException as exc:
            raise OciError(f"registry {self.host} unreachable: {_reason(exc)}") from None
        log.info("registry %s: using plain http (TLS verification disabled)", self.host)
        return "http"

    def _tls_error(self, server: str, exc: requests.exceptions.SSLError) -> UploadError:
        """A refused certificate is a configuration error naming the CA bundle parameter."""
        reason = certificate_failure(exc)
        if reason is None:
            return OciError(f"{server}: TLS error ({_reason(exc)})")
        return tls_verification_failed(
            server,
            reason,
            f"{label(self.side + '_oci_ca_bundle')}, or set {label(self.side + '_oci_enable_tls_verify')} "
            "to false only for test registries",
        )

    def _auth_headers(self, scope: str) -> dict[str, str]:
        if scope in self.tokens:
            return {"Authorization": f"Bearer {self.tokens[scope]}"}
        if self.basic and self.username is not None:
            return {}
        return {}

    def _challenge(self, resp: requests.Response, scope: str) -> bool:
        header = resp.headers.get("WWW-Authenticate", "")
        kind, _, params_text = header.partition(" ")
        if kind.lower() == "basic":
            if self.username is None or self.basic:
                return False
            self.basic = True
            self.session.auth = (self.username, self.password or "")
            return True
        if kind.lower() != "bearer" or scope in self.tokens:
            return False
        params = dict(re.findall(r'(\w+)="([^"]*)"', params_text))
        realm = params.get("realm")
        if not realm:
            return False
        query = {"service": params.get("service", "")}
        query["scope"] = params.get("scope") or scope
        auth = (self.username, self.password or "") if self.username else None
        try:
            tok = requests.get(realm, params=query, auth=auth, timeout=self.timeout, verify=self.verify)
        except requests.exceptions.SSLError as exc:
            raise self._tls_error(f"registry {self.host}: token service {_path_free(realm)}", exc) from None
        except requests.exceptions.RequestException as exc:
            raise OciError(f"registry {self.host}: token service {realm} unreachable: {_reason(exc)}") from None
        if tok.status_code != 200:
            raise OciError(
                f"registry {self.host}: token request refused (HTTP {tok.status_code}); check the credentials",
                tok.status_code,
            )
        data = tok.json()
        token = data.get("token") or data.get("access_token")
        if not token:
            return False
        self.tokens[scope] = token
        return True

    def request(
        self,
        method: str,
        url_or_path: str,
        *,
        scope: str,
        ok: tuple[int, ...] = (200,),
        headers: dict[str, str] | None = None,
        data: Any = None,
        stream: bool = False,  # noqa: ANN401
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        url = url_or_path if "://" in url_or_path else self.base() + url_or_path
        for _ in range(3):
            hdrs = {**(headers or {}), **self._auth_headers(scope)}
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=hdrs,
                    data=data,
                    stream=stream,
                    params=params,
                    timeout=self.timeout,
                    verify=self.verify,
                )
            except requests.exceptions.RequestException as exc:
                raise OciError(f"registry {self.host}: {method} failed: {_reason(exc)}") from None
            if resp.status_code == 401 and self._challenge(resp, scope):
                continue
            if resp.status_code in ok:
                return resp
            if resp.status_code in (401, 403):
                raise OciError(
                    f"registry {self.host} refused {method} {_path(url)}: HTTP {resp.status_code} "
                    "(missing or wrong credentials?)",
                    resp.status_code,
                )
            raise OciError(
                f"registry {self.host}: {method} {_path(url)} failed: HTTP {resp.status_code} {_error_text(resp)}",
                resp.status_code,
            )
        raise OciError(f"registry {self.host}: authentication failed for {method} {_path(url)}", 401)

    # -- reads ---------------------------------------------------------------------------

    def get_manifest(self, repo: str, reference: str) -> tuple[dict[str, Any], str, bytes]:
        """``(manifest, media type, raw bytes)``."""
        resp = self.request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            scope=f"repository:{repo}:pull",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        raw = resp.content
        data = json.loads(raw)
        media = data.get("mediaType") or resp.headers.get("Content-Type", "").split(";")[0]
        return data, media, raw

    def head_manifest(self, repo: str, reference: str) -> str | None:
        try:
            resp = self.request(
                "HEAD",
                f"/v2/{repo}/manifests/{reference}",
                scope=f"repository:{repo}:pull",
                headers={"Accept": MANIFEST_ACCEPT},
            )
        except OciError as exc:
            if exc.status == 404:
                return None
            raise
        return resp.headers.get("Docker-Content-Digest")

    def get_blob(self, repo: str, digest: str) -> bytes:
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull")
        data = resp.content
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise OciError(f"registry {self.host}: blob {digest} of {repo} does not match its digest")
        return data

    def stream_blob(self, repo: str, digest: str, chunk: int) -> Iterator[bytes]:
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull", stream=True)
        with resp:
            yield from resp.iter_content(chunk)

    def has_blob(self, repo: str, digest: str) -> bool:
        try:
            self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull,push")
        except OciError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # -- writes --------------------------------------------------------------------------

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        resp = self.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            scope=f"repository:{repo}:pull,push",
            params={"mount": digest, "from": from_repo},
            ok=(201, 202),
        )
        if resp.status_code == 201:
            return True
        # mount refused: cancel the upload session the registry opened instead
        location = resp.headers.get("Location")
        if location:
            with contextlib.suppress(OciError):
                self.request(
                    "DELETE",
                    urljoin(self.base() + "/", location),
                    scope=f"repository:{repo}:pull,push",
                    ok=(200, 202, 204, 404),
                )
        return False

    def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            scope=f"repository:{repo}:pull,push",
            headers={"Content-Type": media_type},
            data=raw,
            ok=(200, 201),
        )
        return resp.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(raw).hexdigest()


class BlobUpload:
    """Streaming blob upload: chunks go out as ``PATCH`` requests, the digest at the final ``PUT``.

    Memory: the chunk being filled plus, with ``background``, at most ``QUEUE_DEPTH`` full ones
    waiting for the sender. The sha256 and size are computed while the bytes pass.

    With ``background=True`` a sender thread does the PATCHes, so producing the next chunk
    (reading the source, building the tar) overlaps with pushing the previous one. Only use it
    when nothing else talks to the registry session until :meth:`finish`.
    """

    QUEUE_DEPTH = 2

    def __init__(self, reg: RegistrySession, repo: str, chunk_size: int, *, background: bool = False) -> None:
        self.reg = reg
        self.repo = repo
        self.scope = f"repository:{repo}:pull,push"
        self.chunk_size = chunk_size
        self.hash = hashlib.sha256()
        self.size = 0
        self.sent = 0
        self._pieces: list[bytes] = []
        self._pending = 0
        resp = reg.request("POST", f"/v2/{repo}/blobs/uploads/", scope=self.scope, ok=(202,))
        self.location = self._location(resp)
        self._queue: queue.Queue[bytes | None] | None = None
        self._sender: threading.Thread | None = None
        self._error: BaseException | None = None
        if background:
            self._queue = queue.Queue(maxsize=self.QUEUE_DEPTH)
            self._sender = threading.Thread(target=self._send_loop, name="oci-blob-sender", daemon=True)
            self._sender.start()

    def _location(self, resp: requests.Response) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise OciError(f"registry {self.reg.host}: upload answer without Location")
        return urljoin(self.reg.base() + "/", location)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        piece = bytes(data)  # the caller may reuse its buffer
        self.hash.update(piece)
        self.size += len(piece)
        self._pieces.append(piece)
        self._pending += len(piece)
        while self._pending >= self.chunk_size:
            joined = b"".join(self._pieces)
            chunk, rest = joined[: self.chunk_size], joined[self.chunk_size :]
            self._pieces = [rest] if rest else []
            self._pending = len(rest)
            self._send(chunk)
        return len(data)

    def _send(self, chunk: bytes) -> None:
        if self._queue is None:
            self._patch(chunk)
            return
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def _send_loop(self) -> None:
        assert self._queue is not None
        while (chunk := self._queue.get()) is not None:
            if self._error is None:  # after a failure, drain without sending
                try:
                    self._patch(chunk)
                except BaseException as exc:  # handed to the producer thread
                    self._error = exc

    def _stop_sender(self) -> None:
        if self._queue is not None and self._sender is not None:
            self._queue.put(None)
            self._sender.join()
            self._queue = None
        if self._error is not None:
            raise self._error

    def _patch(self, chunk: bytes) -> None:
        end = self.sent + len(chunk) - 1
        resp = self.reg.request(
            "PATCH",
            self.location,
            scope=self.scope,
            ok=(202,),
            data=chunk,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{self.sent}-{end}",
                "Content-Length": str(len(chunk)),
            },
        )
        self.sent += len(chunk)
        self.location = self._location(resp)

    def upload_stream(self, chunks: Iterable[Chunk], total: int) -> tuple[str, int]:
        """The whole blob (``total`` bytes) as ONE ``PATCH`` whose body is streamed from ``chunks``,
        then the closing ``PUT``; returns ``(digest, size)``.

        Each chunk is hashed and written to the socket as it is, then released: nothing is
        buffered or copied here. A ``Content-Length`` is sent (not chunked transfer coding), so
        this is the spec's chunked upload with a single chunk. Use instead of :meth:`write`."""
        if self.size or self._pending:
            raise OciError("upload_stream on an upload that already has data")
        body = _StreamedBody(chunks, total, self.hash)
        if total:
            resp = self.reg.request(
                "PATCH",
                self.location,
                scope=self.scope,
                ok=(202,),
                data=body,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"0-{total - 1}",
                    "Content-Length": str(total),
                },
            )
            self.location = self._location(resp)
        else:
            body.drain()
        if body.size != total:
            raise OciError(f"blob upload: {body.size} bytes sent for {total} announced")
        self.size = self.sent = total
        return self.finish()

    def flush(self) -> None:
        """Nothing to do: chunks are sent when full (file-object protocol)."""

    def finish(self) -> tuple[str, int]:
        if self._pending:
            self._send(b"".join(self._pieces))
            self._pieces, self._pending = [], 0
        self._stop_sender()
        digest = "sha256:" + self.hash.hexdigest()
        sep = "&" if "?" in self.location else "?"
        self.reg.request(
            "PUT",
            f"{self.location}{sep}digest={digest}",
            scope=self.scope,
            ok=(201, 204),
            headers={"Content-Length": "0", "Content-Type": "application/octet-stream"},
            data=b"",
        )
        return digest, self.size

    def cancel(self) -> None:
        with contextlib.suppress(Exception):
            self._stop_sender()
        with contextlib.suppress(OciError):
            self.reg.request("DELETE", self.location, scope=self.scope, ok=(200, 202, 204, 404))


class _StreamedBody:
    """Request body of :meth:`BlobUpload.upload_stream`: ``len()`` gives the Content-Length to
    ``requests``, iterating yields each chunk's view and releases the chunk once the next one is
    asked for, i.e. once the view has been written to the socket.

    A large chunk is hashed by a helper thread while it is being sent (``hashlib`` releases the
    GIL), so hashing does not stall the socket; the chunk's buffer is only released once both
    are done."""

    INLINE_HASH = 1024 * 1024
    """Chunks smaller than this (tar headers, padding) are hashed in line."""

    def __init__(self, chunks: Iterable[Chunk], total: int, digest: hashlib._Hash) -> None:
        self.chunks = chunks
        self.total = total
        self.hash = digest
        self.size = 0
        self.started = False

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[memoryview]:
        if self.started:  # a retry or an auth challenge would send a partial body
            raise OciError("blob upload: the streamed body cannot be sent twice")
        self.started = True
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher:
            for chunk in self.chunks:
                try:
                    view = chunk.view
                    if not len(view):
                        continue
                    if self.size + len(view) > self.total:
                        raise OciError(f"blob upload: more than the {self.total} bytes announced")
                    self.size += len(view)
                    if len(view) < self.INLINE_HASH:
                        self.hash.update(view)
                        yield view
                        continue
                    hashed = hasher.submit(self.hash.update, view)
                    try:
                        yield view
                    finally:
                        hashed.result()
                finally:
                    chunk.release()
        if self.size != self.total:
            raise OciError(f"blob upload: {self.size} bytes for {self.total} announced")

    def drain(self) -> None:
        for _ in self:
            pass


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return exc.__class__.__name__ + (f": {text[:200]}" if text else "")


def _path_free(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: neither credentials nor query in a message."""
    m = re.match(r"^([a-z]+://)(?:[^@/]*@)?([^/?#]+)", url)
    return m.group(1) + m.group(2) if m else ""


def _path(url: str) -> str:
    return re.sub(r"^[a-z]+://[^/]+", "", url).split("?", 1)[0]


def _error_text(resp: requests.Response) -> str:
    try:
        data = resp.json()
        errors = data.get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or resp.reason
    except ValueError:
        return resp.reason or ""
