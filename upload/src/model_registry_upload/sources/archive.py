"""Safe unpacking of zip and tar archives."""

from __future__ import annotations

import logging
import posixpath
import tarfile
import zipfile
from pathlib import Path

from ..errors import UnsafeArchiveError

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _check_name(name: str, archive: str) -> str:
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise UnsafeArchiveError(f"unsafe archive {archive}: member {name!r} has an absolute path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"unsafe archive {archive}: member {name!r} escapes the target directory (..)")
    return posixpath.join(*parts) if parts else ""


def unpack(archive: Path, dest: Path) -> None:
    """Extract ``archive`` into ``dest``; every member is checked before anything is written."""
    dest.mkdir(parents=True, exist_ok=True)
    name = archive.name
    if name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_name(info.filename, name)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise UnsafeArchiveError(f"unsafe archive {name}: member {info.filename!r} is a symlink")
            zf.extractall(dest)  # noqa: S202 - every member name was checked above
        return
    try:
        with tarfile.open(archive, "r:*") as tf:
            _unpack_tar(tf, name, dest)
    except tarfile.TarError as exc:
        raise UnsafeArchiveError(f"cannot read archive {name}: {exc}") from None


def _unpack_tar(tf: tarfile.TarFile, name: str, dest: Path) -> None:
    """Check every member first (clear messages), then extract with the stdlib "data" filter."""
    members = tf.getmembers()
    for m in members:
        rel = _check_name(m.name, name)
        if m.issym() or m.islnk():
            target = m.linkname.replace("\\", "/")
            if m.issym():
                joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
            else:
                joined = posixpath.normpath(target)
            if target.startswith("/") or joined == ".." or joined.startswith("../"):
                raise UnsafeArchiveError(
                    f"unsafe archive {name}: link {m.name!r} -> {m.linkname!r} points outside the target directory"
                )
        elif not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(f"unsafe archive {name}: member {m.name!r} is a device or fifo")
    if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: second line of defence
        tf.extractall(dest, members=members, filter="data")
    else:  # pragma: no cover - every member was checked above
        tf.extractall(dest, members=members)  # noqa: S202
