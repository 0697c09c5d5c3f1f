"""Shared helpers of the upload tests: model files, running the program, pulling images back."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from model_registry_upload.cli import main
from model_registry_upload.config import S3Location
from model_registry_upload.destinations.oci_client import BlobUpload
from model_registry_upload.s3 import S3Client
from tests.backends.http import NginxServer
from tests.backends.models import (  # noqa: F401 - re-exported for the upload suite
    API,
    OCI_LAYER_TAR,
    TITLE,
    MiB,
    model_files,
    placeholder_artifact,
    pull_model_layers,
    push_image,
    push_model_image,
    registry_env,
    rest,
    sha,
    tar_layer,
    tar_of,
    write_dir,
)
from tests.backends.s3 import ADMIN_KEY, ADMIN_SECRET, SeaweedS3


def s3_admin(server: SeaweedS3) -> S3Client:
    return S3Client(
        S3Location(
            bucket="unused",
            key="unused",
            endpoint=server.endpoint,
            access_key_id=SecretStr(ADMIN_KEY),
            secret_access_key=SecretStr(ADMIN_SECRET),
        )
    )


def s3_bucket(server: SeaweedS3, bucket: str) -> S3Client:
    client = s3_admin(server)
    errors = client.client.exceptions
    with contextlib.suppress(errors.BucketAlreadyOwnedByYou, errors.BucketAlreadyExists):
        client.client.create_bucket(Bucket=bucket)
    return client


def s3_upload(server: SeaweedS3, bucket: str, prefix: str, files: dict[str, bytes]) -> None:
    client = s3_bucket(server, bucket)
    for rel, data in files.items():
        client.put(bucket, f"{prefix}/{rel}", data)


def publish_hf(server: NginxServer, repo: str, revision: str, files: dict[str, bytes], root: str = "hf") -> None:
    """A Hugging Face model repository ``repo`` at ``revision`` on nginx, under ``/<root>``: the
    API's file listing and each file where ``resolve`` finds it (``HF_ENDPOINT=<url>/<root>``)."""
    server.publish(
        f"{root}/api/models/{repo}/revision/{revision}",
        json.dumps({"siblings": [{"rfilename": rel} for rel in files]}).encode(),
    )
    for rel, data in files.items():
        server.publish(f"{root}/{repo}/resolve/{revision}/{rel}", data)


def metadata_dir(root: Path, values: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for key, value in values.items():
        (root / key).write_text(value)
    return root


class Run:
    def __init__(self, code: int, termination: str, logs: str) -> None:
        self.code = code
        self.termination = termination
        self.logs = logs

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.termination)
        return data


def run_upload(
    tmp_path: Path,
    env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    argv: list[str] | None = None,
) -> Run:
    term = tmp_path / "termination-log"
    full = {
        "TERMINATION_MESSAGE_PATH": str(term),
        "LOGLEVEL": "DEBUG",
        "MODEL_SYNC_STORAGE_PATH": str(tmp_path / "scratch"),
        "MODEL_SYNC_PART_SIZE": str(5 * MiB),
        "MODEL_SYNC_PARALLELISM": "3",
        "MODEL_SYNC_PROGRESS_INTERVAL": "0.2",
        "MODEL_SYNC_TIMEOUT": "20",
        **env,
    }
    caplog.set_level("DEBUG")
    code = main(argv or [], full)
    captured = capsys.readouterr()
    logs = caplog.text + captured.err + captured.out
    return Run(code, term.read_text() if term.exists() else "", logs)


def count_layer_uploads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the model layers actually streamed to a registry from now on."""
    sizes: list[int] = []
    upload_stream = BlobUpload.upload_stream

    def counting(self: BlobUpload, chunks: Any, total: int) -> tuple[str, int]:  # noqa: ANN401
        sizes.append(total)
        return upload_stream(self, chunks, total)

    monkeypatch.setattr(BlobUpload, "upload_stream", counting)
    return sizes
