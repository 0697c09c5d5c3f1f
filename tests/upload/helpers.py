"""Shared helpers of the upload tests: model files, running the program, pulling images back."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from model_registry_operator.upload.cli import main
from model_registry_operator.upload.config import S3Location
from model_registry_operator.upload.destinations.oci_client import BlobUpload
from model_registry_operator.upload.s3 import S3Client
from tests.backends.http import NginxServer
from tests.backends.oci import DistributionRegistry
from tests.backends.s3 import ADMIN_KEY, ADMIN_SECRET, SeaweedS3

API = "/api/model_registry/v1alpha3"
MiB = 1024 * 1024


def model_files(big: int = 12 * MiB) -> dict[str, bytes]:
    return {
        "config.json": b'{"architectures": ["TestModel"]}\n',
        "weights/model.safetensors": os.urandom(big),
        "tokenizer/vocab/tokenizer.json": b'{"vocab": {"a": 1}}',
        "empty.txt": b"",
    }


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_dir(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


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


def registry_env(mr_url: str) -> dict[str, str]:
    return {"MODEL_SYNC_REGISTRY_SERVER_ADDRESS": mr_url, "MODEL_SYNC_REGISTRY_IS_SECURE": "false"}


def rest(mr_url: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = requests.request(method, mr_url + API + path, json=body, timeout=10)
    assert r.status_code < 300, r.text
    data: dict[str, Any] = r.json()
    return data


def placeholder_artifact(mr_url: str, name: str) -> str:
    """A new RegisteredModel ``name`` / version ``v1`` / ModelArtifact with URI ``PLACEHOLDER``
    (as upstream's e2e test prepares update_artifact); returns the artifact id."""
    rm = rest(mr_url, "POST", "/registered_models", {"name": name})
    mv = rest(mr_url, "POST", "/model_versions", {"name": "v1", "registeredModelId": rm["id"]})
    ma = rest(
        mr_url,
        "POST",
        f"/model_versions/{mv['id']}/artifacts",
        {"artifactType": "model-artifact", "name": name, "uri": "PLACEHOLDER"},
    )
    return str(ma["id"])


TITLE = "org.opencontainers.image.title"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def tar_layer(entries: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """An uncompressed tar: ``(name, data or None for a symlink, symlink target)`` per member."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, target in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, target or ""
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_of(files: dict[str, bytes], prefix: str = "") -> bytes:
    """An uncompressed tar of ``files``, each named ``<prefix><relpath>``."""
    return tar_layer([(prefix + rel, data, None) for rel, data in files.items()])


def push_image(reg: DistributionRegistry, repo: str, tag: str, layers: list[bytes]) -> str:
    """An image of these uncompressed layers, pushed with the test's own client; returns its reference."""
    descs = [{"mediaType": OCI_LAYER_TAR, "digest": reg.push_blob(repo, raw), "size": len(raw)} for raw in layers]
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]}}
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": reg.push_blob(repo, config),
            "size": len(config),
        },
        "layers": descs,
    }
    reg.put_manifest(repo, tag, manifest, "application/vnd.oci.image.manifest.v1+json")
    return f"{reg.host}/{repo}:{tag}"


def push_model_image(reg: DistributionRegistry, repo: str, tag: str, files: dict[str, bytes]) -> str:
    """An image of one layer holding ``models/<relpath>`` per file, as a modelcar lays them out."""
    return push_image(reg, repo, tag, [tar_of(files, "models/")])


def pull_model_layers(
    reg: DistributionRegistry, repo: str, tag: str
) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
    """``(relpath -> sha256 of files under /models, manifest, config)``, digests verified.

    The model is one uncompressed tar layer per file after the base image's layers, in path
    order: each holds ``models/<path>`` (its title) and the directory entries above it, nothing
    else, so the union of the layers is the ``/models`` tree. (A model of more files than
    ``MAX_MODEL_LAYERS`` has layers titled ``models`` holding runs of consecutive files.)"""
    manifest, _ = reg.get_manifest(repo, tag)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    config = json.loads(reg.get_blob(repo, manifest["config"]["digest"]))
    layers = manifest["layers"]
    assert len(config["rootfs"]["diff_ids"]) == len(layers)
    assert len(config["history"]) >= len(layers)
    first = len(layers)
    while first and (layers[first - 1].get("annotations") or {}).get(TITLE, "").partition("/")[0] == "models":
        first -= 1
    model_layers = layers[first:]
    assert model_layers, "no model layer"
    # uncompressed: digest == diff_id
    assert config["rootfs"]["diff_ids"][first:] == [layer["digest"] for layer in model_layers]
    out: dict[str, str] = {}
    for layer in model_layers:
        title = layer["annotations"][TITLE]
        assert layer["mediaType"] == OCI_LAYER_TAR
        blob = reg.get_blob(repo, layer["digest"])
        assert len(blob) == layer["size"]
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            members = tar.getmembers()
            for m in members:
                assert m.uid == 0
                assert m.gid == 0
                assert m.mtime == 0
            names = [m.name for m in members if not m.isdir()]
            assert names == sorted(names)
            assert not out or min(names) > max(f"models/{rel}" for rel in out)  # file order across layers
            if title != "models":
                assert names == [title]  # one file per layer
            parents: set[str] = set()
            for name in names:
                parent = name.rpartition("/")[0]
                while parent:
                    parents.add(parent)
                    parent = parent.rpartition("/")[0]
            assert [m.name for m in members if m.isdir()] == sorted(parents)
            for m in members:
                if m.isdir():
                    continue
                f = tar.extractfile(m)
                assert f is not None
                rel = m.name.removeprefix("models/")
                assert rel not in out
                out[rel] = sha(f.read())
    return out, manifest, config


def count_layer_uploads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the model layers actually streamed to a registry from now on."""
    sizes: list[int] = []
    upload_stream = BlobUpload.upload_stream

    def counting(self: BlobUpload, chunks: Any, total: int) -> tuple[str, int]:  # noqa: ANN401
        sizes.append(total)
        return upload_stream(self, chunks, total)

    monkeypatch.setattr(BlobUpload, "upload_stream", counting)
    return sizes
