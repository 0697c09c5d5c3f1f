"""OCI source: the files under ``/models`` of a (modelcar) image.

Layers are applied in order into the storage path (whiteouts honoured, every member checked:
no absolute paths, no ``..``, no links leaving the directory, no devices), then the unpacked
files are the model. Layers may be plain tar or gzip-compressed tar.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

from ..destinations.oci_client import DOCKER_LIST, OCI_INDEX, ImageRef, RegistrySession, parse_ref
from ..errors import TransferError, UnsafeArchiveError
from .base import Source, SourceFile
from .pvc import local_files

log = logging.getLogger(__name__)

MODELS_PREFIX = "models/"


def _strip_root(name: str) -> str:
    """``./models/a`` and ``/models/a`` -> ``models/a``."""
    while name.startswith(("./", "/")):
        name = name[2:] if name.startswith("./") else name[1:]
    return name


class _IterStream:
    """File-like ``read()`` over an iterator of byte chunks (for ``tarfile`` stream mode)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = b""
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = size
        while wanted != 0:
            if self.pos >= len(self.buffer):
                try:
                    self.buffer, self.pos = next(self.chunks), 0
                except StopIteration:
                    break
                continue
            take = len(self.buffer) - self.pos if wanted < 0 else min(wanted, len(self.buffer) - self.pos)
            parts.append(self.buffer[self.pos : self.pos + take])
            self.pos += take
            if wanted > 0:
                wanted -= take
        return b"".join(parts)


class OciSource(Source):
    def __init__(
        self,
        uri: str,
        *,
        username: str | None,
        password: str | None,
        tls_verify: bool,
        ca_bundle: Path | None,
        platform: str,
        storage_path: Path,
        timeout: float,
    ) -> None:
        self.ref: ImageRef = parse_ref(uri)
        self.platform = platform
        self.storage_path = storage_path
        self.reg = RegistrySession(
            self.ref.api_host,
            username=username,
            password=password,
            tls_verify=tls_verify,
            timeout=timeout,
            ca_bundle=str(ca_bundle) if ca_bundle else None,
            side="source",
        )

    def describe(self) -> str:
        return f"oci://{self.ref}"

    def _layers(self) -> list[dict[str, str]]:
        repo = self.ref.repository
        manifest, media, _ = self.reg.get_manifest(repo, self.ref.reference)
        if media in (OCI_INDEX, DOCKER_LIST) or "manifests" in manifest:
            os_name, _, arch = self.platform.partition("/")
            arch = arch.split("/", 1)[0]
            chosen = next(
                (
                    m
                    for m in manifest.get("manifests", [])
                    if (m.get("platform") or {}).get("os") == os_name
                    and (m.get("platform") or {}).get("architecture") == arch
                ),
                None,
            )
            if chosen is None:
                raise TransferError(f"source image {self.ref} has no {self.platform} manifest")
            manifest, media, _ = self.reg.get_manifest(repo, chosen["digest"])
        layers = manifest.get("layers")
        if not isinstance(layers, list):
            raise TransferError(f"source image {self.ref}: unsupported manifest type {media}")
        return layers

    def files(self) -> list[SourceFile]:
        target = self.storage_path / "model"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for layer in self._layers():
            media = layer.get("mediaType", "")
            if "zstd" in media:
                raise TransferError(f"source image {self.ref}: zstd layers are not supported ({layer['digest']})")
            log.info("reading layer %s of %s", layer["digest"][:19], self.ref)
            stream = _IterStream(self.reg.stream_blob(self.ref.repository, layer["digest"], 1024 * 1024))
            try:
                with tarfile.open(fileobj=stream, mode="r|*") as tar:  # type: ignore[call-overload]
                    self._apply(tar, target)
            except tarfile.TarError as exc:
                raise TransferError(f"source image {self.ref}: unreadable layer {layer['digest']}: {exc}") from None
        return local_files(target, f"/models of {self.ref}")

    def _apply(self, tar: tarfile.TarFile, target: Path) -> None:
        for member in tar:
            name = _strip_root(member.name)
            if not name.startswith(MODELS_PREFIX):
                continue
            rel = posixpath.normpath(name[len(MODELS_PREFIX) :])
            if rel in (".", "") or rel.startswith("../") or rel == "..":
                if rel in (".", ""):
                    continue
                raise UnsafeArchiveError(f"source image {self.ref}: member {member.name!r} escapes /models")
            base = posixpath.basename(rel)
            if base.startswith(".wh."):
                victim = target / posixpath.dirname(rel) / base[len(".wh.") :]
                if base == ".wh..wh..opq":
                    shutil.rmtree(target / posixpath.dirname(rel), ignore_errors=True)
                elif victim.is_dir() and not victim.is_symlink():
                    shutil.rmtree(victim)
                else:
                    victim.unlink(missing_ok=True)
                continue
            dest = target / rel
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                with dest.open("wb") as out:
                    shutil.copyfileobj(src, out, 1024 * 1024)
            elif member.issym() or member.islnk():
                link = member.linkname
                if member.issym():
                    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
                    outside = link.startswith("/") or joined == ".." or joined.startswith("../")
                else:  # hard link: the target is a path from the image root
                    target_path = _strip_root(link)
                    joined = posixpath.normpath(target_path[len(MODELS_PREFIX) :])
                    outside = not target_path.startswith(MODELS_PREFIX) or joined.startswith("..")
                if outside:
                    raise UnsafeArchiveError(
                        f"source image {self.ref}: link {member.name!r} -> {link!r} points outside /models"
                    )
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.unlink(missing_ok=True)
                if member.issym():
                    dest.symlink_to(link)
                else:
                    shutil.copyfile(target / joined, dest)
            else:
                raise UnsafeArchiveError(f"source image {self.ref}: member {member.name!r} is a device or fifo")
