"""OCI modelcar destination.

The image is the base image (one platform of it) plus one new uncompressed tar layer PER MODEL
FILE (as upstream's olot lays a modelcar out), in file (path) order: each holds
``models/<relative path>`` and the directory entries above it, so the layers together give the
``/models`` tree, sub-directories preserved. Each layer is a tar stream sent as the body of one
blob-upload PATCH while it is hashed, the file contents passed on in the source's own part
buffers: no scratch copy of the model is made, and no copy of its bytes in memory. Up to
``parallelism`` layers are uploaded at once, all drawing on the source's one bounded buffer pool.
Entries are reproducible (uid/gid 0, mtime 0, fixed modes), so the same file always gives the
same layer digest, whatever the other files (a registry keeps one blob for it across versions).
A layer the destination repository already holds is not uploaded (or even read) again: each
layer is annotated with its source file's fingerprint (an S3 ETag, say), and the layers of the
repository's earlier manifests with the same path, size and fingerprint are reused; a file on a
local disk is hashed instead and reused when its digest matches. Pushing the same model to the
same tag twice thus moves no model bytes, and ends as a success. The layers an attempt pushed
before it failed are in no manifest; a :class:`LayerJournal` (kept by the registration, on the
unfinished artifact) records each one as it completes, and a retry reuses them the same way.
A model of more than :data:`MAX_MODEL_LAYERS` files is packed into that many layers instead
(runs of consecutive files), as container runtimes cap the number of layers of an image.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import posixpath
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, BinaryIO, Protocol

from ..config import OciDestination
from ..errors import TransferError
from ..progress import Progress
from ..sources.base import BufferPool, Chunk, SourceFile, read_chunks
from .oci_client import (
    DOCKER_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    BlobUpload,
    ImageRef,
    OciError,
    RegistrySession,
    parse_ref,
)

log = logging.getLogger(__name__)

MODELS_DIR = "models"
MAX_MODEL_LAYERS = 100
"""At most this many model layers (Docker refuses images of more than 127 layers, overlayfs
mounts are limited too); a model of more files packs runs of consecutive files per layer."""
EPOCH = "1970-01-01T00:00:00Z"
_LAYER_TYPES = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar": OCI_LAYER_TAR,
}


def _tarinfo(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o644
    return info


NUL_BLOCKS = bytes(tarfile.RECORDSIZE)


def _model_entries(files: list[SourceFile]) -> list[tuple[bytes, SourceFile | None]]:
    """``(tar header, file or None for a directory)`` in layer order."""
    ordered = sorted(files, key=lambda f: f.path)
    dirs: set[str] = {MODELS_DIR}
    for f in ordered:
        parent = posixpath.dirname(f.path)
        while parent:
            dirs.add(f"{MODELS_DIR}/{parent}")
            parent = posixpath.dirname(parent)
    entries: list[tuple[bytes, SourceFile | None]] = [
        (_header(_tarinfo(d + "/", directory=True)), None) for d in sorted(dirs)
    ]
    entries += [(_header(_tarinfo(f"{MODELS_DIR}/{f.path}", f.size)), f) for f in ordered]
    return entries


def _header(info: tarfile.TarInfo) -> bytes:
    # what TarFile.addfile writes (GNU long-name blocks included)
    return info.tobuf(tarfile.GNU_FORMAT, tarfile.ENCODING, "surrogateescape")


def _pad(size: int) -> int:
    return -size % tarfile.BLOCKSIZE


def _end(offset: int) -> int:
    """The end-of-archive blocks, then zeros up to a whole record (as ``tarfile`` closes)."""
    end = offset + 2 * tarfile.BLOCKSIZE
    return 2 * tarfile.BLOCKSIZE + (-end % tarfile.RECORDSIZE)


def model_tar_size(files: list[SourceFile]) -> int:
    """Size of the model layer :func:`model_tar_chunks` produces."""
    offset = 0
    for header, f in _model_entries(files):
        offset += len(header)
        if f is not None:
            offset += f.size + _pad(f.size)
    return offset + _end(offset)


def model_tar_chunks(files: list[SourceFile], progress: Progress | None, pool: BufferPool) -> Iterator[Chunk]:
    """The reproducible model layer (``models/...``), an uncompressed tar, as chunks.

    Byte for byte what ``tarfile`` writes in stream mode (GNU format), but the file contents are
    passed on as the sources' own buffers (or buffers of ``pool``), never joined or copied. The
    consumer releases each chunk once it is done with it.
    """
    entries = _model_entries(files)
    order = [f for _, f in entries if f is not None]
    opened: dict[int, BinaryIO] = {}

    def stream_of(index: int) -> BinaryIO | None:
        if index < len(order) and index not in opened:
            opened[index] = order[index].open()
        return opened.get(index)

    offset, index = 0, 0
    try:
        for header, f in entries:
            yield Chunk(memoryview(header))
            offset += len(header)
            if f is None:
                continue
            stream = stream_of(index)
            assert stream is not None
            left = f.size
            try:
                for chunk in read_chunks(stream, f.size, pool, f"source file {f.path}"):
                    left -= len(chunk.view)
                    if not left:
                        # open the next file now: its first parts are fetched while the last
                        # part of this one is still being sent
                        stream_of(index + 1)
                    if progress is not None:
                        progress.add(len(chunk.view))
                    yield chunk
            finally:
                opened.pop(index).close()
            index += 1
            offset += f.size
            if pad := _pad(f.size):
                yield Chunk(memoryview(NUL_BLOCKS)[:pad])
                offset += pad
    finally:
        for stream in opened.values():
            stream.close()
    end = _end(offset)
    while end:
        n = min(end, len(NUL_BLOCKS))
        yield Chunk(memoryview(NUL_BLOCKS)[:n])
        end -= n


def model_layer_groups(files: list[SourceFile], limit: int | None = None) -> list[list[SourceFile]]:
    """The files of each model layer, in path order: one file per layer, or, past ``limit``
    (default :data:`MAX_MODEL_LAYERS`) files, ``limit`` runs of consecutive files."""
    ordered = sorted(files, key=lambda f: f.path)
    limit = MAX_MODEL_LAYERS if limit is None else max(1, limit)
    if len(ordered) <= limit:
        return [[f] for f in ordered]
    per, extra = divmod(len(ordered), limit)
    groups, start = [], 0
    for i in range(limit):
        end = start + per + (1 if i < extra else 0)
        groups.append(ordered[start:end])
        start = end
    return groups


FINGERPRINT = "modelregistry.opendatahub.io/source-fingerprint"
"""Layer annotation: the source file's :attr:`SourceFile.fingerprint`, by which a later push
knows, before reading the file, that the destination already holds its layer."""
MAX_PREVIOUS_MANIFESTS = 16
"""How many of the destination repository's manifests (the target tag first, then the other
tags in reverse order: the newest-looking versions) are read for layers to reuse."""


class LayerJournal(Protocol):
    """Where an upload records the model layers it pushed, for a retry after a failure."""

    def known(self) -> list[dict[str, Any]]:
        """Descriptors of the layers earlier attempts pushed."""
        ...

    def record(self, descriptor: dict[str, Any]) -> None:
        """Called, from any upload thread, once a layer is in the repository."""
        ...


EARLIER_ATTEMPT = ""
"""The ``tag`` of a reuse candidate that an earlier attempt's journal names."""


def _title(group: list[SourceFile]) -> str:
    return f"{MODELS_DIR}/{group[0].path}" if len(group) == 1 else MODELS_DIR


def _descriptor(group: list[SourceFile], digest: str, size: int) -> dict[str, Any]:
    annotations = {"org.opencontainers.image.title": _title(group)}
    if len(group) == 1 and group[0].fingerprint:
        annotations[FINGERPRINT] = group[0].fingerprint
    return {"mediaType": OCI_LAYER_TAR, "digest": digest, "size": size, "annotations": annotations}


def layer_digest(group: list[SourceFile]) -> str:
    """The digest of the layer of ``group`` (files on a local disk), read from the files."""
    h = hashlib.sha256()
    pool = BufferPool(1024 * 1024, 1)
    for chunk in model_tar_chunks(group, None, pool):
        h.update(chunk.view)
        chunk.release()
    return "sha256:" + h.hexdigest()


_STOPPED = "model layer upload stopped: another layer failed"


def _stop_on(failed: threading.Event, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """``chunks``, ending in an error as soon as ``failed`` is set (another layer's upload failed)."""
    try:
        for chunk in chunks:
            if failed.is_set():
                chunk.release()
                raise TransferError(_STOPPED)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _is_stop(exc: BaseException | None) -> bool:
    return isinstance(exc, TransferError) and str(exc) == _STOPPED


class OciModelcar:
    def __init__(self, dest: OciDestination, *, timeout: float, chunk_size: int, parallelism: int = 4) -> None:
        self.dest = dest
        self.ref = parse_ref(dest.uri)
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.parallelism = max(1, parallelism)
        password = dest.password.get_secret_value() if dest.password else None
        self.ca = str(dest.ca_bundle) if dest.ca_bundle else None
        self.reg = RegistrySession(
            self.ref.api_host,
            username=dest.username,
            password=password,
            tls_verify=dest.tls_verify,
            timeout=timeout,
            ca_bundle=self.ca,
        )

    def uri(self) -> str:
        return f"oci://{self.ref}"

    def check(self) -> None:
        """Reach the destination registry with the credentials (before any transfer)."""
        self.reg.request("GET", "/v2/", scope=f"repository:{self.ref.repository}:pull,push")

    # -- base image ----------------------------------------------------------------------

    def _base_session(self, ref: ImageRef) -> RegistrySession:
        if ref.api_host == self.ref.api_host:
            return self.reg
        auth = self.dest.auths.get(ref.registry)
        user = auth[0] if auth else None
        password = auth[1].get_secret_value() if auth else None
        return RegistrySession(
            ref.api_host,
            username=user,
            password=password,
            tls_verify=self.dest.tls_verify,
            timeout=self.timeout,
            ca_bundle=self.ca,
        )

    def _base(self) -> tuple[ImageRef | None, RegistrySession | None, dict[str, Any], list[dict[str, Any]], str | None]:
        """``(ref, session, config, layers, manifest digest)`` of the chosen base platform."""
        base = self.dest.base_image.strip()
        os_name, _, arch = self.dest.platform.partition("/")
        arch, _, variant = arch.partition("/")
        if base in ("", "scratch"):
            cfg: dict[str, Any] = {
                "architecture": arch,
                "os": os_name,
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }
            return None, None, cfg, [], None
        ref = parse_ref(base)
        sess = self._base_session(ref)
        manifest, media, raw = sess.get_manifest(ref.repository, ref.reference)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if media in (OCI_INDEX, DOCKER_LIST) or "manifests" in manifest:
            chosen = None
            for m in manifest.get("manifests", []):
                plat = m.get("platform") or {}
                if (
                    plat.get("os") == os_name
                    and plat.get("architecture") == arch
                    and (not variant or plat.get("variant") == variant)
                ):
                    chosen = m
                    break
            if chosen is None:
                plats = [m.get("platform") or {} for m in manifest.get("manifests", [])]
                have = ", ".join(f"{p.get('os')}/{p.get('architecture')}" for p in plats)
                raise TransferError(f"base image {base} has no {self.dest.platform} manifest (has: {have})")
            manifest, media, raw = sess.get_manifest(ref.repository, chosen["digest"])
            digest = chosen["digest"]
        if "layers" not in manifest or "config" not in manifest:
            raise TransferError(f"base image {base}: unsupported manifest type {media}")
        config = json.loads(sess.get_blob(ref.repository, manifest["config"]["digest"]))
        return ref, sess, config, list(manifest["layers"]), digest

    def _copy_blob(self, src_ref: ImageRef, sess: RegistrySession, desc: dict[str, Any]) -> None:
        digest = desc["digest"]
        repo = self.ref.repository
        if self.reg.has_blob(repo, digest):
            log.info("base layer %s already in the destination", digest[:19])
            return
        if sess is self.reg and self.reg.mount_blob(repo, digest, src_ref.repository):
            log.info("base layer %s mounted from %s", digest[:19], src_ref.repository)
            return
        up = BlobUpload(self.reg, repo, self.chunk_size)
        try:
            for chunk in sess.stream_blob(src_ref.repository, digest, self.chunk_size):
                up.write(chunk)
            got, _ = up.finish()
        except BaseException:
            up.cancel()
            raise
        if got != digest:
            raise TransferError(f"base layer {digest} changed while copying (got {got})")

    def _put_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.reg.has_blob(self.ref.repository, digest):
            up = BlobUpload(self.reg, self.ref.repository, self.chunk_size)
            up.write(data)
            up.finish()
        return digest

    # -- model layers --------------------------------------------------------------------

    # -- layers the destination already holds ---------------------------------------------

    def _previous_layers(self) -> dict[str, list[dict[str, Any]]]:
        """Single-file model layers of the repository's earlier manifests, by title.

        Reading them is an optimisation: an unreadable manifest only means nothing is reused."""
        repo = self.ref.repository
        try:
            resp = self.reg.request("GET", f"/v2/{repo}/tags/list", scope=f"repository:{repo}:pull", ok=(200, 404))
            listed = (resp.json().get("tags") or []) if resp.status_code == 200 else []
        except (OciError, ValueError) as exc:
            log.info("cannot list the tags of %s (%s): no layer is reused", repo, exc)
            return {}
        tags = [t for t in [self.ref.tag] if t and t in listed]
        tags += sorted((t for t in listed if t != self.ref.tag), reverse=True)
        found: dict[str, list[dict[str, Any]]] = {}
        for tag in tags[:MAX_PREVIOUS_MANIFESTS]:
            try:
                manifest, _, _ = self.reg.get_manifest(repo, tag)
            except (OciError, ValueError) as exc:
                log.info("cannot read %s:%s (%s): its layers are not reused", repo, tag, exc)
                continue
            for layer in manifest.get("layers") or []:
                title = (layer.get("annotations") or {}).get("org.opencontainers.image.title", "")
                if layer.get("mediaType") == OCI_LAYER_TAR and title.startswith(f"{MODELS_DIR}/"):
                    found.setdefault(title, []).append({**layer, "tag": tag})
        return found

    def _reusable(self, group: list[SourceFile], previous: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
        """The descriptor of ``group``'s layer if the destination holds it already, else ``None``.

        A candidate is an earlier layer of the same path and size; it is the same layer when the
        source's fingerprint matches, or, for a file on a local disk, when the file hashes to its
        digest (so a changed file of the same size is never mistaken for the old one)."""
        if len(group) != 1:
            return None
        f = group[0]
        size = model_tar_size(group)
        candidates = [d for d in previous.get(_title(group), []) if d.get("size") == size]
        if not candidates:
            return None
        if f.fingerprint:
            match = next(
                (d for d in candidates if (d.get("annotations") or {}).get(FINGERPRINT) == f.fingerprint), None
            )
        elif f.local_path is not None:
            digest = layer_digest(group)
            match = next((d for d in candidates if d.get("digest") == digest), None)
        else:
            match = None
        if match is None or not self.reg.has_blob(self.ref.repository, match["digest"]):
            return None
        seen = f"tag {match['tag']}" if match["tag"] != EARLIER_ATTEMPT else "pushed by an earlier attempt"
        log.info(
            "model layer %s (%s) is already in %s (%s): not uploaded again",
            match["digest"],
            _title(group),
            self.ref.repository,
            seen,
        )
        return _descriptor(group, match["digest"], size)

    def _push_model_layers(
        self, files: list[SourceFile], progress: Progress | None, journal: LayerJournal | None = None
    ) -> list[dict[str, Any]]:
        """One layer per file (see :func:`model_layer_groups`), up to ``parallelism`` uploads at
        once; descriptors in file order.

        Each upload is one PATCH whose body is the file's tar, streamed: the parts fetched by the
        source go out as they are (no copy, no join), hashed on the way. The source's buffer pool
        is shared by every upload in flight (a sender holds one buffer, released before it asks
        for the next part), so memory does not grow with the number of layers in flight. Only
        for sources that do not hand their own buffers over (local files) are parts read into
        buffers of one pool here, shared the same way. A failed upload stops the others; the
        ones that completed are in ``journal``."""
        groups = model_layer_groups(files)
        if not groups:
            return []
        previous = self._previous_layers()
        for entry in journal.known() if journal is not None else []:
            title = (entry.get("annotations") or {}).get("org.opencontainers.image.title", "")
            if entry.get("mediaType") == OCI_LAYER_TAR and title.startswith(f"{MODELS_DIR}/"):
                previous.setdefault(title, []).append({**entry, "tag": EARLIER_ATTEMPT})
        reused: dict[int, dict[str, Any]] = {}
        for i, group in enumerate(groups):
            desc = self._reusable(group, previous) if previous else None
            if desc is not None:
                reused[i] = desc
                if progress is not None:
                    progress.add(sum(f.size for f in group))
        todo = [i for i in range(len(groups)) if i not in reused]
        if not todo:
            log.info("all %d model layers are already in %s", len(groups), self.ref.repository)
            return [reused[i] for i in range(len(groups))]
        log.info(
            "streaming %d model layers (%d files, up to %d layers at once) to %s",
            len(todo),
            len(files),
            self.parallelism,
            self.ref,
        )
        workers = min(self.parallelism, len(todo))
        pool = BufferPool(self.chunk_size, workers + 1)
        failed = threading.Event()

        def upload(group: list[SourceFile]) -> dict[str, Any]:
            if failed.is_set():
                raise TransferError(_STOPPED)
            try:
                up = BlobUpload(self.reg, self.ref.repository, self.chunk_size)
            except BaseException:
                failed.set()
                raise
            try:
                digest, size = up.upload_stream(
                    _stop_on(failed, model_tar_chunks(group, progress, pool)), model_tar_size(group)
                )
            except BaseException:
                failed.set()
                up.cancel()
                raise
            log.info(
                "model layer %s (%s, %d bytes) uploaded",
                digest,
                _title(group) if len(group) == 1 else f"{len(group)} files",
                size,
            )
            desc = _descriptor(group, digest, size)
            if journal is not None and len(group) == 1:
                journal.record(desc)
            return desc

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="layer") as executor:
            futures: list[Future[dict[str, Any]]] = [executor.submit(upload, groups[i]) for i in todo]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(fut.exception() is not None for fut in done):
                failed.set()
                for fut in futures:
                    fut.cancel()
                wait(futures)
                errors = [fut.exception() for fut in futures if not fut.cancelled() and fut.exception()]
                first = next((e for e in errors if not _is_stop(e)), errors[0])
                assert first is not None
                raise first
        uploaded = dict(zip(todo, (fut.result() for fut in futures), strict=True))
        return [reused.get(i) or uploaded[i] for i in range(len(groups))]

    # -- push ----------------------------------------------------------------------------

    def push(
        self,
        files: list[SourceFile],
        progress: Progress | None,
        annotations: dict[str, str],
        journal: LayerJournal | None = None,
    ) -> str:
        """Build and push the modelcar; returns the manifest digest."""
        base_ref, sess, base_config, base_layers, base_digest = self._base()
        layers: list[dict[str, Any]] = []
        for desc in base_layers:
            assert base_ref is not None
            assert sess is not None
            self._copy_blob(base_ref, sess, desc)
            layers.append(
                {
                    "mediaType": _LAYER_TYPES.get(desc["mediaType"], desc["mediaType"]),
                    "digest": desc["digest"],
                    "size": desc["size"],
                }
            )
        model_layers = self._push_model_layers(files, progress, journal)
        layers += model_layers
        config = copy.deepcopy(base_config)
        rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        history = config.setdefault("history", [])
        for layer in model_layers:
            rootfs.setdefault("diff_ids", []).append(layer["digest"])  # uncompressed: digest == diff_id
            history.append(
                {
                    "created": EPOCH,
                    "created_by": "model-registry-upload",
                    "comment": layer["annotations"]["org.opencontainers.image.title"],
                }
            )
        for entry in config["history"]:
            entry.setdefault("created", EPOCH)
        config_raw = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        config_digest = self._put_blob(config_raw)
        manifest_annotations = dict(annotations)
        if base_ref is not None and base_digest:
            manifest_annotations["org.opencontainers.image.base.name"] = str(base_ref)
            manifest_annotations["org.opencontainers.image.base.digest"] = base_digest
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_raw)},
            "layers": layers,
            "annotations": manifest_annotations,
        }
        raw = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        tag = self.ref.tag or digest
        existing = self.reg.head_manifest(self.ref.repository, tag) if self.ref.tag else None
        if existing == digest:
            log.info("%s already holds the identical manifest %s", self.ref, digest)
            return digest
        if self.ref.digest and self.ref.digest != digest:
            raise OciError(f"destination pins digest {self.ref.digest} but the built image is {digest}")
        self.reg.put_manifest(self.ref.repository, tag, raw, OCI_MANIFEST)
        log.info("pushed %s (%s)", self.ref, digest)
        return digest
