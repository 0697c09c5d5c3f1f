"""PVC source: a mounted directory (or single file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from ..errors import TransferError
from .base import Source, SourceFile


def local_files(root: Path, what: str) -> list[SourceFile]:
    """Every regular file under ``root`` (symlinks must stay inside it)."""
    if root.is_file():
        return [_entry(root, root.name)]
    if not root.is_dir():
        raise TransferError(f"{what}: {root} does not exist")
    real_root = root.resolve()
    out: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(real_root):
                    raise TransferError(f"{what}: symlink {path} points outside {root}")
            if not path.is_file():
                continue
            out.append(_entry(path, path.relative_to(root).as_posix()))
    if not out:
        raise TransferError(f"{what}: {root} holds no files")
    return out


def _entry(path: Path, rel: str) -> SourceFile:
    def opener() -> BinaryIO:
        return path.open("rb")

    return SourceFile(rel, path.stat().st_size, opener, local_path=path)


class PvcSource(Source):
    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return f"pvc path {self.path}"

    def files(self) -> list[SourceFile]:
        return local_files(self.path, "pvc source")
