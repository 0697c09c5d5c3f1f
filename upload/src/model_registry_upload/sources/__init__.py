"""Model sources."""

from __future__ import annotations

from pathlib import Path

from .. import config as cfgmod
from ..errors import ConfigError
from .base import Source, SourceFile
from .oci import OciSource
from .pvc import PvcSource
from .s3 import S3Source
from .uri import UriSource

__all__ = ["Source", "SourceFile", "make_source"]


def make_source(cfg: cfgmod.UploadConfig, storage_path: Path) -> Source:
    src = cfg.source
    if isinstance(src, cfgmod.S3Source):
        return S3Source(src.s3, part_size=cfg.part_size, parallelism=cfg.parallelism, timeout=cfg.timeout)
    if isinstance(src, cfgmod.UriSource):
        return UriSource(
            src.uri.get_secret_value(),
            storage_path=storage_path,
            part_size=cfg.part_size,
            parallelism=cfg.parallelism,
            timeout=cfg.timeout,
            ca_bundle=src.ca_bundle,
        )
    if isinstance(src, cfgmod.PvcSource):
        return PvcSource(src.path)
    if isinstance(src, cfgmod.OciSource):
        platform = cfg.destination.platform if isinstance(cfg.destination, cfgmod.OciDestination) else "linux/amd64"
        return OciSource(
            src.uri,
            username=src.username,
            password=src.password.get_secret_value() if src.password else None,
            tls_verify=src.tls_verify,
            ca_bundle=src.ca_bundle,
            platform=platform,
            storage_path=storage_path,
            timeout=cfg.timeout,
        )
    raise ConfigError(f"unsupported source type {src.type}")
