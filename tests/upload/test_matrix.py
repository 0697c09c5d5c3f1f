"""Every source x every destination x every intent, through the real servers.

Each case moves a small model with a nested sub-directory (``config.json``, ``sub/dir/weights.bin``,
an empty file) from its source to its destination and registers it, then checks what a user
would: every file's sha256 at the destination (the modelcar pulled back, or the S3 objects read
back), the termination message's URI, and the registry's view of the artifact (``LIVE``, that URI)
and of its parents. The sources: SeaweedFS S3 (a prefix), an HTTP tar archive on nginx, a Hugging
Face layout on nginx, an OCI image in the distribution registry with the files under ``/models``,
and a local directory (a PVC as the Job mounts it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from model_registry_upload.errors import EXIT_OK
from tests.backends.http import NginxServer
from tests.backends.oci import DistributionRegistry
from tests.backends.registry_server import RealRegistryServer
from tests.backends.s3 import ADMIN_KEY, ADMIN_SECRET, SeaweedS3

from .helpers import (
    metadata_dir,
    placeholder_artifact,
    publish_hf,
    pull_model_layers,
    push_model_image,
    registry_env,
    rest,
    run_upload,
    s3_bucket,
    s3_upload,
    sha,
    tar_of,
    write_dir,
)

SOURCES = ("s3", "http", "hf", "oci", "pvc")
DESTINATIONS = ("oci", "s3")
INTENTS = ("create_model", "create_version", "update_artifact")
SOURCE_BUCKET, DESTINATION_BUCKET = "matrix-source", "matrix-destination"


def model(name: str) -> dict[str, bytes]:
    return {
        "config.json": json.dumps({"model": name}).encode(),
        "sub/dir/weights.bin": os.urandom(192 * 1024 + 7),
        "empty.txt": b"",
    }


def source_env(
    kind: str,
    name: str,
    files: dict[str, bytes],
    tmp_path: Path,
    s3: SeaweedS3,
    nginx: NginxServer,
    reg: DistributionRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The model ``files`` placed in a source of ``kind``, and the variables that name it."""
    if kind == "s3":
        s3_upload(s3, SOURCE_BUCKET, name, files)
        return {
            "MODEL_SYNC_SOURCE_TYPE": "s3",
            "MODEL_SYNC_SOURCE_AWS_BUCKET": SOURCE_BUCKET,
            "MODEL_SYNC_SOURCE_AWS_KEY": name,
            "MODEL_SYNC_SOURCE_AWS_ENDPOINT": s3.endpoint,
            "MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID": ADMIN_KEY,
            "MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
        }
    if kind == "http":
        return {
            "MODEL_SYNC_SOURCE_TYPE": "uri",
            "MODEL_SYNC_SOURCE_URI": nginx.publish(f"matrix/{name}.tar", tar_of(files)),
        }
    if kind == "hf":
        publish_hf(nginx, f"org/{name}", "main", files)
        monkeypatch.setenv("HF_ENDPOINT", nginx.url + "/hf")
        return {"MODEL_SYNC_SOURCE_TYPE": "uri", "MODEL_SYNC_SOURCE_URI": f"hf://org/{name}"}
    if kind == "oci":
        ref = push_model_image(reg, f"matrix-source/{name}", "v1", files)
        return {
            "MODEL_SYNC_SOURCE_TYPE": "oci",
            "MODEL_SYNC_SOURCE_OCI_URI": ref,
            "MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY": "false",
        }
    assert kind == "pvc"
    return {"MODEL_SYNC_SOURCE_TYPE": "pvc", "MODEL_SYNC_SOURCE_PATH": str(write_dir(tmp_path / "pvc", files))}


def destination_env(kind: str, name: str, s3: SeaweedS3, reg: DistributionRegistry) -> dict[str, str]:
    if kind == "oci":
        return {
            "MODEL_SYNC_DESTINATION_TYPE": "oci",
            "MODEL_SYNC_DESTINATION_OCI_URI": f"{reg.host}/matrix/{name}:v1",
            "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": "scratch",
            "MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY": "false",
        }
    s3_bucket(s3, DESTINATION_BUCKET)
    return {
        "MODEL_SYNC_DESTINATION_TYPE": "s3",
        "MODEL_SYNC_DESTINATION_AWS_BUCKET": DESTINATION_BUCKET,
        "MODEL_SYNC_DESTINATION_AWS_KEY": name,
        "MODEL_SYNC_DESTINATION_AWS_ENDPOINT": s3.endpoint,
        "MODEL_SYNC_DESTINATION_AWS_ACCESS_KEY_ID": ADMIN_KEY,
        "MODEL_SYNC_DESTINATION_AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
    }


def intent_env(intent: str, name: str, tmp_path: Path, mr_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """The intent's variables, and the ids registered beforehand (``model`` for create_version,
    ``artifact`` and its parents for update_artifact)."""
    env = {"MODEL_SYNC_MODEL_UPLOAD_INTENT": intent}
    if intent == "update_artifact":
        artifact = placeholder_artifact(mr_url, name)
        assert rest(mr_url, "GET", f"/model_artifacts/{artifact}").get("state") != "LIVE"
        return {**env, "MODEL_SYNC_MODEL_ARTIFACT_ID": artifact}, {"artifact": artifact}
    meta = {
        "ModelVersion.name": "v1",
        "ModelArtifact.model_format_name": "onnx",
        "ModelArtifact.model_format_version": "1",
        "ModelVersion.custom_properties": '{"case": "matrix"}',
    }
    before: dict[str, str] = {}
    if intent == "create_model":
        meta["RegisteredModel.name"] = name
    else:
        before["model"] = str(rest(mr_url, "POST", "/registered_models", {"name": name})["id"])
        env["MODEL_SYNC_MODEL_ID"] = before["model"]
    return {**env, "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(metadata_dir(tmp_path / "meta", meta))}, before


def destination_files(
    kind: str, name: str, s3: SeaweedS3, reg: DistributionRegistry, sizes: dict[str, int]
) -> dict[str, str]:
    """relpath -> sha256 of what the destination holds."""
    if kind == "oci":
        return pull_model_layers(reg, f"matrix/{name}", "v1")[0]
    client = s3_bucket(s3, DESTINATION_BUCKET)
    listed = {o.key.removeprefix(f"{name}/"): o.size for o in client.list_objects(DESTINATION_BUCKET, f"{name}/")}
    assert listed == sizes
    return {
        rel: sha(client.get_range(DESTINATION_BUCKET, f"{name}/{rel}", 0, size - 1) if size else b"")
        for rel, size in listed.items()
    }


@pytest.mark.parametrize("intent", INTENTS)
@pytest.mark.parametrize("destination", DESTINATIONS)
@pytest.mark.parametrize("source", SOURCES)
def test_every_source_destination_and_intent(
    source: str,
    destination: str,
    intent: str,
    tmp_path: Path,
    s3_server: SeaweedS3,
    nginx: NginxServer,
    oci_registry: DistributionRegistry,
    mr_server: RealRegistryServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"matrix-{source}-{destination}-{intent.replace('_', '-')}"
    files = model(name)
    env_intent, before = intent_env(intent, name, tmp_path, mr_server.url)
    env = {
        **source_env(source, name, files, tmp_path, s3_server, nginx, oci_registry, monkeypatch),
        **destination_env(destination, name, s3_server, oci_registry),
        **registry_env(mr_server.url),
        **env_intent,
    }
    r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    out: dict[str, Any] = r.json()

    # the destination holds the model, sub-directories and the empty file included
    assert destination_files(destination, name, s3_server, oci_registry, {k: len(v) for k, v in files.items()}) == {
        rel: sha(data) for rel, data in files.items()
    }
    if destination == "oci":
        assert out["uri"] == f"oci://{oci_registry.host}/matrix/{name}:v1"
    else:
        assert out["uri"].startswith(f"s3://{DESTINATION_BUCKET}/{name}?endpoint=")
    assert (out["intent"], out["files"], out["bytes"]) == (intent, len(files), sum(map(len, files.values())))

    # the registry: the artifact is LIVE with that URI, under the right version and model
    artifact_id = out["ModelArtifact"]["id"]
    if "artifact" in before:
        assert artifact_id == before["artifact"]
    artifact = rest(mr_server.url, "GET", f"/model_artifacts/{artifact_id}")
    assert (artifact["state"], artifact["uri"]) == ("LIVE", out["uri"])
    if intent == "update_artifact":
        return
    model_id, version_id = out["RegisteredModel"]["id"], out["ModelVersion"]["id"]
    if "model" in before:
        assert model_id == before["model"]
    assert rest(mr_server.url, "GET", f"/registered_models/{model_id}")["name"] == name
    versions = rest(mr_server.url, "GET", f"/registered_models/{model_id}/versions")["items"]
    assert [(v["id"], v["name"]) for v in versions] == [(version_id, "v1")]
    assert versions[0]["customProperties"]["case"] == {"metadataType": "MetadataStringValue", "string_value": "matrix"}
    artifacts = rest(mr_server.url, "GET", f"/model_versions/{version_id}/artifacts")["items"]
    assert [a["id"] for a in artifacts] == [artifact_id]
    assert (artifact["modelFormatName"], artifact["modelFormatVersion"]) == ("onnx", "1")
