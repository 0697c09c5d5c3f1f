"""Entry point of the upload program: ``main(argv) -> exit code``.

Exit codes: 0 success, 1 transfer failure, 2 invalid configuration, 3 model registry failure.
No input makes it print a traceback (an unexpected error is one ERROR line, its traceback only
at DEBUG) or a secret: registered secrets and the user info of URLs are masked in every log line
and in the termination message.
The outcome is also written to the termination-message file (``TERMINATION_MESSAGE_PATH``,
default ``/dev/termination-log``): JSON with the intent, ids and artifact URI on success, the
error message on failure.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from model_registry_upload_contract import DEFAULT_TERMINATION_PATH, MAX_TERMINATION_BYTES, TERMINATION_PATH_ENV

from . import redact
from .config import (
    OciDestination,
    S3Destination,
    UploadConfig,
    label,
    load_config,
    log_level,
    register_given_secrets,
)
from .destinations.oci import OciModelcar
from .destinations.s3 import S3Upload
from .errors import EXIT_CONFIG, EXIT_OK, EXIT_TRANSFER, ConfigError, UploadError
from .metadata import ModelMetadata, load_metadata
from .progress import Progress
from .registration import Registration
from .registry import RegistryClient
from .sources import make_source
from .status_report import StatusReporter

log = logging.getLogger("model_registry_upload")

STAGING_DIR = ".model-upload-staging"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (not the one at set-up)."""

    @property
    def stream(self) -> Any:  # noqa: ANN401 - a text stream
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(level: int = logging.INFO) -> None:
    redact.install()
    root = logging.getLogger()
    if not any(getattr(h, "_mro_upload", False) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
        handler._mro_upload = True  # type: ignore[attr-defined]
        handler.addFilter(redact.RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "requests"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.INFO))


def write_termination(message: str, environ: Mapping[str, str]) -> None:
    path = environ.get(TERMINATION_PATH_ENV, DEFAULT_TERMINATION_PATH)
    data = redact.redact(message).encode("utf-8", "backslashreplace")[:MAX_TERMINATION_BYTES]
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        log.warning("could not write the termination message to %s: %s", path, exc.strerror)


def run(cfg: UploadConfig, reporter: StatusReporter | None = None) -> dict[str, Any]:
    """Do the upload; returns the termination payload. Raises :class:`UploadError`.

    ``reporter`` also receives the progress (the ModelUploadJob's status, in a cluster)."""
    meta = load_metadata(cfg.metadata_path)
    # scratch space of this program (archives, OCI source layers): emptied before and after;
    # created first, so that an unusable --storage-path fails before anything is contacted
    staging = cfg.storage_path / STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise ConfigError(
            f"{label('storage_path')}: cannot create {staging}: {exc.strerror or exc.__class__.__name__}"
        ) from None
    try:
        return _transfer(cfg, meta, staging, reporter)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _transfer(cfg: UploadConfig, meta: ModelMetadata, staging: Path, reporter: StatusReporter | None) -> dict[str, Any]:
    client = RegistryClient(cfg.registry, timeout=cfg.timeout)
    reg = Registration(
        client,
        cfg.intent,
        meta,
        model_id=cfg.model_id,
        model_version_id=cfg.model_version_id,
        model_artifact_id=cfg.model_artifact_id,
        author=cfg.registry.author,
    )
    log.info("intent %s: checking the model registry at %s", cfg.intent, cfg.registry.url)
    reg.check()

    dest: OciModelcar | S3Upload
    if isinstance(cfg.destination, OciDestination):
        dest = OciModelcar(cfg.destination, timeout=cfg.timeout, chunk_size=cfg.part_size, parallelism=cfg.parallelism)
    else:
        assert isinstance(cfg.destination, S3Destination)
        dest = S3Upload(cfg.destination.s3, part_size=cfg.part_size, parallelism=cfg.parallelism, timeout=cfg.timeout)
    dest.check()
    uri = dest.uri()

    source = make_source(cfg, staging)
    log.info("source: %s", source.describe())
    files = source.files()
    source.check(files)
    total = sum(f.size for f in files)
    log.info("%d files, %d bytes to copy to %s", len(files), total, uri)

    ids = reg.start(uri)
    result: dict[str, Any] = {"intent": cfg.intent}
    try:
        report = reporter.report if reporter is not None else None
        with Progress(total, cfg.progress_interval, "upload", report) as progress:
            if isinstance(dest, OciModelcar):
                annotations = {"io.kubeflow.model-registry.source": source.describe()}
                digest = dest.push(files, progress, annotations, reg.layer_journal())
                result["digest"] = digest
            else:
                dest.push(files, progress)
    except BaseException:
        reg.fail()
        raise
    reg.complete(uri)
    if ids.registered_model_id:
        result["RegisteredModel"] = {"id": ids.registered_model_id}
    if ids.model_version_id:
        result["ModelVersion"] = {"id": ids.model_version_id}
    result["ModelArtifact"] = {"id": ids.model_artifact_id, "uri": uri}
    result["uri"] = uri
    result["bytes"] = total
    result["files"] = len(files)
    return result


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    setup_logging()
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:  # model-registry-upload -- --flag ...
        args = args[1:]
    if any(a in ("-h", "--help") for a in args):
        from .config import build_parser

        build_parser().print_help()
        return EXIT_OK
    register_given_secrets(args, env)
    try:
        setup_logging(log_level(args, env))
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        write_termination(f"configuration error: {exc}", env)
        return EXIT_CONFIG
    try:
        cfg = load_config(args, env)
        log.debug(
            "configuration: source %s, destination %s, registry %s, intent %s, parallelism %d, part size %d",
            cfg.source.type,
            cfg.destination.type,
            cfg.registry.url,
            cfg.intent,
            cfg.parallelism,
            cfg.part_size,
        )
        reporter = StatusReporter.from_env(env)
        result = run(cfg, reporter)
    except UploadError as exc:
        kind = "configuration error" if isinstance(exc, ConfigError) else "upload failed"
        log.error("%s: %s", kind, exc)
        write_termination(f"{kind}: {exc}", env)
        return exc.exit_code
    except KeyboardInterrupt:
        write_termination("upload failed: interrupted", env)
        return EXIT_TRANSFER
    except Exception as exc:  # noqa: BLE001 - last resort: report, never leak a traceback as the message
        log.error("upload failed: unexpected error: %s: %s", exc.__class__.__name__, exc)
        log.debug("traceback of the unexpected error", exc_info=True)
        write_termination(f"upload failed: unexpected error: {exc.__class__.__name__}: {exc}", env)
        return EXIT_TRANSFER
    message = json.dumps(result, sort_keys=True)
    log.info("done: %s", message)
    write_termination(message, env)
    return EXIT_OK
