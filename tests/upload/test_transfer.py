"""End-to-end uploads against real servers: SeaweedFS S3, distribution registry, nginx, model registry.

The model registry is the real server on MariaDB (``mr_server``); the registration intents on
both databases are in test_registration.py.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import tarfile
import threading
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from model_registry_upload.config import OciDestination, S3Location
from model_registry_upload.destinations import oci as oci_dest
from model_registry_upload.destinations.oci import OciModelcar
from model_registry_upload.destinations.oci_client import BlobUpload
from model_registry_upload.errors import EXIT_CONFIG, EXIT_OK, EXIT_REGISTRY, EXIT_TRANSFER, TransferError
from model_registry_upload.progress import Progress
from model_registry_upload.registration import INCOMPLETE_MARKER
from model_registry_upload.sources.base import SourceFile
from model_registry_upload.sources.s3 import S3Source
from model_registry_upload.sources.uri import UriSource
from tests.backends.http import NginxServer
from tests.backends.oci import PASSWORD, USER, DistributionRegistry
from tests.backends.registry_server import BearerTLSProxy, RealRegistryServer, official_client_read
from tests.backends.s3 import ADMIN_KEY, ADMIN_SECRET, READER_KEY, READER_SECRET, SeaweedS3

from .helpers import (
    count_layer_uploads,
    metadata_dir,
    model_files,
    placeholder_artifact,
    publish_hf,
    pull_model_layers,
    push_image,
    registry_env,
    rest,
    run_upload,
    s3_admin,
    s3_bucket,
    s3_upload,
    sha,
    tar_layer,
    write_dir,
)

MR = RealRegistryServer


def s3_source_env(
    s3: SeaweedS3, bucket: str, key: str, akid: str = ADMIN_KEY, secret: str = ADMIN_SECRET
) -> dict[str, str]:
    return {
        "MODEL_SYNC_SOURCE_TYPE": "s3",
        "MODEL_SYNC_SOURCE_AWS_BUCKET": bucket,
        "MODEL_SYNC_SOURCE_AWS_KEY": key,
        "MODEL_SYNC_SOURCE_AWS_ENDPOINT": s3.endpoint,
        "MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID": akid,
        "MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY": secret,
    }


def oci_env(reg: DistributionRegistry, ref: str, base: str) -> dict[str, str]:
    return {
        "MODEL_SYNC_DESTINATION_TYPE": "oci",
        "MODEL_SYNC_DESTINATION_OCI_URI": f"{reg.host}/{ref}",
        "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": base,
        "MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY": "false",
    }


def test_s3_to_oci_create_model(
    tmp_path: Path,
    s3_server: SeaweedS3,
    oci_registry: DistributionRegistry,
    base_image: str,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = model_files()
    s3_upload(s3_server, "models", "llm-a", files)
    s3_upload(s3_server, "models", "llm-a-v2", {"other.bin": b"must not be picked by the llm-a prefix"})
    meta = metadata_dir(
        tmp_path / "meta",
        {
            "RegisteredModel.name": "llm-a",
            "RegisteredModel.description": "a test model",
            "RegisteredModel.owner": "team-a",
            "RegisteredModel.custom_properties": json.dumps(
                {"size": 7, "ratio": 0.5, "ok": True, "langs": ["en", "fr"], "big": 12345678901}
            ),
            "ModelVersion.name": "v1",
            "ModelVersion.author": "alice",
            "ModelVersion.customProperties": json.dumps(
                {"label": {"metadataType": "MetadataStringValue", "string_value": "x"}}
            ),
            "ModelArtifact.model_format_name": "onnx",
            "ModelArtifact.modelFormatVersion": "1",
            "ModelArtifact.model_source_kind": "transfer_job",
        },
    )
    env = {
        **s3_source_env(s3_server, "models", "llm-a"),
        **oci_env(oci_registry, "models/llm-a:v1", base_image),
        **registry_env(mr_server.url),
        "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_model",
        "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta),
    }
    result = run_upload(tmp_path, env, caplog, capsys)
    assert result.code == EXIT_OK, result.termination
    out = result.json()
    assert out["intent"] == "create_model"
    assert out["uri"] == f"oci://{oci_registry.host}/models/llm-a:v1"
    assert out["ModelArtifact"]["uri"] == out["uri"]
    assert {"RegisteredModel", "ModelVersion", "ModelArtifact"} <= set(out)

    pulled, manifest, config = pull_model_layers(oci_registry, "models/llm-a", "v1")
    assert pulled == {rel: sha(data) for rel, data in files.items()}
    assert config["architecture"] == "amd64"  # picked from the multi-arch base index
    assert len(manifest["layers"]) == 1 + len(files)  # the base layer, one layer per file
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == base_image

    back = official_client_read(mr_server.url, "llm-a", "v1")
    assert back["model"]["id"] == out["RegisteredModel"]["id"]
    assert back["model"]["owner"] == "team-a"
    props = back["model"]["custom_properties"]
    assert props["size"] == 7
    assert props["ratio"] == 0.5
    assert props["ok"] is True
    assert props["langs"] == '["en", "fr"]'
    assert props["big"] == "12345678901"
    assert INCOMPLETE_MARKER not in props
    assert back["version"]["author"] == "alice"
    assert back["version"]["custom_properties"] == {"label": "x"}
    assert back["artifact"]["state"] == "LIVE"
    assert back["artifact"]["uri"] == out["uri"]
    assert back["artifact"]["model_format_name"] == "onnx"
    assert back["artifact"]["model_format_version"] == "1"
    assert "upload finished" in result.logs  # final progress line
    for secret in (ADMIN_SECRET, ADMIN_KEY):
        assert secret not in result.logs

    # same files again under another tag of the same repo: identical layer digests (reproducible)
    env2 = {
        **env,
        **oci_env(oci_registry, "models/llm-a:again", base_image),
        "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_version",
        "MODEL_SYNC_MODEL_ID": out["RegisteredModel"]["id"],
    }
    (meta / "ModelVersion.name").write_text("v2")
    again = run_upload(tmp_path, env2, caplog, capsys)
    assert again.code == EXIT_OK, again.termination
    m2, _ = oci_registry.get_manifest("models/llm-a", "again")
    assert m2["layers"] == manifest["layers"]


def test_uri_nginx_to_oci_with_auth_and_secrets_redacted(
    tmp_path: Path,
    nginx: NginxServer,
    oci_registry_auth: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = model_files(big=11 * 1024 * 1024)["weights/model.safetensors"]
    url = nginx.publish("files/model.safetensors", data)
    art = placeholder_artifact(mr_server.url, "uri-model")
    dockercfg = tmp_path / "dockerconfig.json"
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    dockercfg.write_text(json.dumps({"auths": {oci_registry_auth.host: {"auth": auth}}}))
    token = "mr-user-token-abcdef123456"  # noqa: S105 - test value
    env = {
        "MODEL_SYNC_SOURCE_TYPE": "uri",
        "MODEL_SYNC_SOURCE_URI": url,
        **oci_env(oci_registry_auth, "models/uri-model:v1", "scratch"),
        "MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH": str(dockercfg),
        **registry_env(mr_server.url),
        "MODEL_SYNC_REGISTRY_USER_TOKEN": token,
        "MODEL_SYNC_REGISTRY_TOKEN_OVER_HTTP": "allow",  # a token to plain http only when told so
        "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
    }
    result = run_upload(tmp_path, env, caplog, capsys)
    assert result.code == EXIT_OK, result.termination
    assert result.json()["ModelArtifact"]["id"] == art
    pulled, manifest, _ = pull_model_layers(oci_registry_auth, "models/uri-model", "v1")
    assert pulled == {"model.safetensors": sha(data)}
    assert len(manifest["layers"]) == 1  # scratch base, one file
    got = rest(mr_server.url, "GET", f"/model_artifacts/{art}")
    assert got["state"] == "LIVE"
    assert got["uri"] == f"oci://{oci_registry_auth.host}/models/uri-model:v1"
    for secret in (PASSWORD, auth, f"{USER}:{PASSWORD}", token):
        assert secret not in result.logs, f"secret leaked into logs: {secret[:4]}..."
        assert secret not in result.termination


def test_pvc_to_s3_update_artifact(
    tmp_path: Path,
    s3_server: SeaweedS3,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = model_files()
    src = write_dir(tmp_path / "pvc", files)
    client = s3_bucket(s3_server, "out")
    art = placeholder_artifact(mr_server.url, "pvc-model")
    creds = tmp_path / "dest-creds"
    creds.mkdir()
    for k, v in {
        "AWS_ACCESS_KEY_ID": ADMIN_KEY,
        "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
        "AWS_S3_BUCKET": "out",
        "AWS_S3_ENDPOINT": s3_server.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        (creds / k).write_text(v + "\n")
    env = {
        "MODEL_SYNC_SOURCE_TYPE": "pvc",
        "MODEL_SYNC_SOURCE_PATH": str(src),
        "MODEL_SYNC_DESTINATION_TYPE": "s3",
        "MODEL_SYNC_DESTINATION_S3_CREDENTIALS_PATH": str(creds),
        "MODEL_SYNC_DESTINATION_AWS_KEY": "pvc-model/v1",
        **registry_env(mr_server.url),
        "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
    }
    result = run_upload(tmp_path, env, caplog, capsys)
    assert result.code == EXIT_OK, result.termination
    listed = {o.key: o.size for o in client.list_objects("out", "pvc-model/v1/")}
    assert listed == {f"pvc-model/v1/{rel}": len(data) for rel, data in files.items()}
    for rel, data in files.items():
        if data:
            assert sha(client.get_range("out", f"pvc-model/v1/{rel}", 0, len(data) - 1)) == sha(data)
    got = rest(mr_server.url, "GET", f"/model_artifacts/{art}")
    assert got["state"] == "LIVE"
    assert got["uri"].startswith("s3://out/pvc-model/v1?endpoint=")
    assert ADMIN_SECRET not in result.logs


def test_uri_archive_unpacked_with_subdirs(
    tmp_path: Path,
    nginx: NginxServer,
    oci_registry: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = model_files(big=1024 * 1024)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    url = nginx.publish("archives/model.tar.gz", buf.getvalue())
    art = placeholder_artifact(mr_server.url, "archive-model")
    env = {
        "MODEL_SYNC_SOURCE_TYPE": "uri",
        "MODEL_SYNC_SOURCE_URI": url,
        **oci_env(oci_registry, "models/archive:v1", "scratch"),
        **registry_env(mr_server.url),
        "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
    }
    result = run_upload(tmp_path, env, caplog, capsys)
    assert result.code == EXIT_OK, result.termination
    pulled, _, _ = pull_model_layers(oci_registry, "models/archive", "v1")
    assert pulled == {rel: sha(data) for rel, data in files.items()}
    assert not (tmp_path / "scratch" / ".model-upload-staging").exists()  # staging cleaned up


# ------------------------------------------------------------------------------------------
# failures: clear message, right exit code, nothing LIVE


def _evil_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    return buf.getvalue()


def _evil_zip(member: str) -> bytes:
    """A zip with a safe file and then ``member``: nothing of it may be written."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr(zipfile.ZipInfo(member), b"evil")  # a ZipInfo keeps the name as given
    return buf.getvalue()


def _registry_entities(mr: MR) -> dict[str, dict[str, Any]]:
    """Every RegisteredModel / ModelVersion (id -> name) and ModelArtifact (id -> (state, uri))."""
    out: dict[str, dict[str, Any]] = {}
    for kind in ("registered_models", "model_versions", "model_artifacts"):
        items: dict[str, Any] = {}
        token = ""
        while True:
            page = rest(mr.url, "GET", f"/{kind}?pageSize=100" + (f"&nextPageToken={token}" if token else ""))
            for item in page.get("items") or []:
                items[item["id"]] = (item.get("state"), item.get("uri")) if kind == "model_artifacts" else item["name"]
            token = page.get("nextPageToken") or ""
            if not token or not page.get("items"):
                break
        out[kind] = items
    return out


_FAILURES = [
    "missing_artifact_id",
    "missing_source_bucket",
    "bad_dockerconfigjson",
    "unknown_artifact_id",
    "unreachable_registry",
    "duplicate_version",
    "name_taken",
    "s3_access_denied",
    "s3_no_such_key",
    "tar_escape",
    "zip_escape",
    "zip_absolute",
]


_BadInput = tuple[dict[str, str], int, str]
"""``(env overriding the good parameters, exit code, message in the termination file)``."""


def _bad_input(case: str, tmp_path: Path, s3: SeaweedS3, nginx: NginxServer, mr: MR) -> _BadInput:
    match case:
        case "missing_artifact_id":
            return (
                {"MODEL_SYNC_MODEL_ARTIFACT_ID": ""},
                EXIT_CONFIG,
                "--model-artifact-id (MODEL_SYNC_MODEL_ARTIFACT_ID)",
            )
        case "missing_source_bucket":
            return (
                {"MODEL_SYNC_SOURCE_AWS_BUCKET": ""},
                EXIT_CONFIG,
                "--source-aws-bucket (MODEL_SYNC_SOURCE_AWS_BUCKET)",
            )
        case "bad_dockerconfigjson":
            bad = tmp_path / "bad.json"
            bad.write_text('{"auths": {')
            return {"MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH": str(bad)}, EXIT_CONFIG, "not valid JSON"
        case "unknown_artifact_id":
            return (
                {"MODEL_SYNC_MODEL_ARTIFACT_ID": "987654"},
                EXIT_REGISTRY,
                "ModelArtifact with ID '987654' not found",
            )
        case "unreachable_registry":
            return {"MODEL_SYNC_REGISTRY_SERVER_ADDRESS": "http://127.0.0.1:9"}, EXIT_REGISTRY, "unreachable"
        case "duplicate_version":  # fails before any byte moves
            rm = rest(mr.url, "POST", "/registered_models", {"name": "dup-model"})
            rest(mr.url, "POST", "/model_versions", {"name": "v1", "registeredModelId": rm["id"]})
            meta = metadata_dir(tmp_path / "meta-dup", {"ModelVersion.name": "v1"})
            return (
                {
                    "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_version",
                    "MODEL_SYNC_MODEL_ID": rm["id"],
                    "MODEL_SYNC_MODEL_ARTIFACT_ID": "",
                    "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta),
                },
                EXIT_REGISTRY,
                "ModelVersion with name 'v1' already exists",
            )
        case "name_taken":  # create_model
            rest(mr.url, "POST", "/registered_models", {"name": "taken-model"})
            meta = metadata_dir(tmp_path / "meta-taken", {"RegisteredModel.name": "taken-model"})
            return (
                {
                    "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_model",
                    "MODEL_SYNC_MODEL_ARTIFACT_ID": "",
                    "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta),
                },
                EXIT_REGISTRY,
                "RegisteredModel with name 'taken-model' already exists",
            )
        case "s3_access_denied":  # an identity with List only
            return s3_source_env(s3, "models", "small", READER_KEY, READER_SECRET), EXIT_TRANSFER, "AccessDenied"
        case "s3_no_such_key":
            return s3_source_env(s3, "models", "no-such-model"), EXIT_TRANSFER, "NoSuchKey"
        case "tar_escape":  # tar with a ../ member
            url = nginx.publish("evil/model.tar", _evil_tar())
            return (
                {"MODEL_SYNC_SOURCE_TYPE": "uri", "MODEL_SYNC_SOURCE_URI": url},
                EXIT_TRANSFER,
                "escapes the target directory",
            )
        case "zip_escape":
            url = nginx.publish("evil/escape.zip", _evil_zip("../escape.txt"))
            return (
                {"MODEL_SYNC_SOURCE_TYPE": "uri", "MODEL_SYNC_SOURCE_URI": url},
                EXIT_TRANSFER,
                "member '../escape.txt' escapes the target directory",
            )
        case "zip_absolute":
            url = nginx.publish("evil/absolute.zip", _evil_zip(f"{tmp_path}/escape.txt"))
            return (
                {"MODEL_SYNC_SOURCE_TYPE": "uri", "MODEL_SYNC_SOURCE_URI": url},
                EXIT_TRANSFER,
                "has an absolute path",
            )
    raise AssertionError(case)


@pytest.mark.parametrize("case", _FAILURES)
def test_failures(
    case: str,
    tmp_path: Path,
    s3_server: SeaweedS3,
    oci_registry: DistributionRegistry,
    nginx: NginxServer,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bad input: its exit code and message in the termination file, and nothing changed
    anywhere: no entity created or touched in the registry (the placeholder artifact an update
    would have replaced is not LIVE and keeps its URI), no tag (not even a blob) pushed."""
    s3_upload(s3_server, "models", "small", {"a.bin": b"abc" * 1000})
    repo = f"models/failures-{case.replace('_', '-')}"
    art = placeholder_artifact(mr_server.url, f"failure-{case.replace('_', '-')}")
    good = {
        **s3_source_env(s3_server, "models", "small"),
        **oci_env(oci_registry, f"{repo}:v1", "scratch"),
        **registry_env(mr_server.url),
        "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
    }
    env, code, message = _bad_input(case, tmp_path, s3_server, nginx, mr_server)
    before = _registry_entities(mr_server)

    r = run_upload(tmp_path, {**good, **env}, caplog, capsys)
    assert r.code == code, r.termination
    assert message in r.termination

    after = _registry_entities(mr_server)
    for kind in ("registered_models", "model_versions", "model_artifacts"):
        assert len(after[kind]) == len(before[kind]), f"{kind} created: {set(after[kind]) - set(before[kind])}"
    assert after == before
    placeholder = rest(mr_server.url, "GET", f"/model_artifacts/{art}")
    assert placeholder.get("state") != "LIVE"  # unset or not LIVE
    assert placeholder["uri"] == "PLACEHOLDER"
    tags = oci_registry.session().get(f"{oci_registry.url}/v2/{repo}/tags/list", timeout=5)
    assert tags.status_code == 404, tags.text  # the repository does not exist: nothing was pushed
    if case == "s3_access_denied":
        assert READER_SECRET not in r.logs
    if case in ("tar_escape", "zip_escape", "zip_absolute"):
        assert not (tmp_path / "escape.txt").exists()
        assert not list((tmp_path / "scratch").rglob("escape.txt"))
        assert not list((tmp_path / "scratch").rglob("ok.txt"))  # checked before anything is written


def test_s3_single_object_key(
    tmp_path: Path,
    s3_server: SeaweedS3,
    oci_registry: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s3_upload(s3_server, "models", "single", {"model.onnx": b"onnx-bytes" * 100})
    art = placeholder_artifact(mr_server.url, "single-model")
    env = {
        **s3_source_env(s3_server, "models", "single/model.onnx"),
        **oci_env(oci_registry, "models/single:v1", "scratch"),
        **registry_env(mr_server.url),
        "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
    }
    r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    pulled, _, _ = pull_model_layers(oci_registry, "models/single", "v1")
    assert pulled == {"model.onnx": sha(b"onnx-bytes" * 100)}
    assert s3_admin(s3_server).head("models", "single/model.onnx") == 1000


def test_pvc_to_tls_registry_with_bearer_token(
    tmp_path: Path,
    oci_registry_tls_token: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reg = oci_registry_tls_token
    files = model_files(big=6 * 1024 * 1024)
    src = write_dir(tmp_path / "pvc", files)
    art = placeholder_artifact(mr_server.url, "token-model")
    env = {
        "MODEL_SYNC_SOURCE_TYPE": "pvc",
        "MODEL_SYNC_SOURCE_PATH": str(src),
        **oci_env(reg, "models/token:v1", "scratch"),
        "MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY": "true",
        "MODEL_SYNC_DESTINATION_OCI_USERNAME": USER,
        "MODEL_SYNC_DESTINATION_OCI_PASSWORD": PASSWORD,
        **registry_env(mr_server.url),
        "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
    }
    # TLS verification on, CA not given: clear TLS error, nothing LIVE
    r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_CONFIG  # a configuration error: the Job is not retried
    assert "TLS verification failed" in r.termination
    assert rest(mr_server.url, "GET", f"/model_artifacts/{art}").get("state") != "LIVE"  # unset or not LIVE
    # with the CA bundle: bearer challenge -> token service -> push
    assert reg.ca_file is not None
    r = run_upload(tmp_path, {**env, "MODEL_SYNC_DESTINATION_OCI_CA_BUNDLE": str(reg.ca_file)}, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    assert reg.token_server is not None
    assert reg.token_server.issued > 0
    pulled, _, _ = pull_model_layers(reg, "models/token", "v1")
    assert pulled == {rel: sha(data) for rel, data in files.items()}
    assert PASSWORD not in r.logs
    # wrong password: the token service refuses
    r = run_upload(
        tmp_path,
        {
            **env,
            "MODEL_SYNC_DESTINATION_OCI_CA_BUNDLE": str(reg.ca_file),
            "MODEL_SYNC_DESTINATION_OCI_PASSWORD": "wrong-password-1",
        },
        caplog,
        capsys,
    )
    assert r.code == EXIT_TRANSFER
    assert "token request refused" in r.termination

    # that image as the source of another upload: a TLS error names the source's parameters
    source = {
        "MODEL_SYNC_SOURCE_TYPE": "oci",
        "MODEL_SYNC_SOURCE_OCI_URI": f"{reg.host}/models/token:v1",
        "MODEL_SYNC_SOURCE_OCI_USERNAME": USER,
        "MODEL_SYNC_SOURCE_OCI_PASSWORD": PASSWORD,
    }
    copy = {
        **env,
        **source,
        **oci_env(reg, "models/tls:copy", "scratch"),
        "MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY": "true",
        "MODEL_SYNC_DESTINATION_OCI_CA_BUNDLE": str(reg.ca_file),
    }
    r = run_upload(tmp_path, copy, caplog, capsys)
    assert r.code == EXIT_CONFIG
    assert "--source-oci-ca-bundle" in r.termination
    assert "--destination-oci" not in r.termination
    r = run_upload(tmp_path, {**copy, "MODEL_SYNC_SOURCE_OCI_CA_BUNDLE": str(reg.ca_file)}, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    assert pull_model_layers(reg, "models/tls", "copy")[0] == {rel: sha(data) for rel, data in files.items()}


def test_oci_source_to_s3(
    tmp_path: Path,
    oci_registry: DistributionRegistry,
    base_image: str,
    s3_server: SeaweedS3,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = model_files(big=3 * 1024 * 1024)
    src = write_dir(tmp_path / "pvc", files)
    art = placeholder_artifact(mr_server.url, "oci-src-model")
    env = {
        "MODEL_SYNC_SOURCE_TYPE": "pvc",
        "MODEL_SYNC_SOURCE_PATH": str(src),
        **oci_env(oci_registry, "models/oci-src:v1", base_image),
        **registry_env(mr_server.url),
        "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
    }
    r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    client = s3_bucket(s3_server, "from-oci")
    env = {
        "MODEL_SYNC_SOURCE_TYPE": "oci",
        "MODEL_SYNC_SOURCE_OCI_URI": f"oci://{oci_registry.host}/models/oci-src:v1",
        "MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY": "false",
        "MODEL_SYNC_DESTINATION_TYPE": "s3",
        "MODEL_SYNC_DESTINATION_AWS_BUCKET": "from-oci",
        "MODEL_SYNC_DESTINATION_AWS_KEY": "m",
        "MODEL_SYNC_DESTINATION_AWS_ENDPOINT": s3_server.endpoint,
        "MODEL_SYNC_DESTINATION_AWS_ACCESS_KEY_ID": ADMIN_KEY,
        "MODEL_SYNC_DESTINATION_AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
        **registry_env(mr_server.url),
        "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
    }
    r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    listed = {o.key: o.size for o in client.list_objects("from-oci", "m/")}
    assert listed == {f"m/{rel}": len(data) for rel, data in files.items()}  # busybox base files not included
    big = files["weights/model.safetensors"]
    assert sha(client.get_range("from-oci", "m/weights/model.safetensors", 0, len(big) - 1)) == sha(big)


def test_hf_uri_source(
    tmp_path: Path,
    nginx: NginxServer,
    oci_registry: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """hf://org/model:rev against a Hugging Face compatible endpoint (static files served by nginx)."""
    files = {"config.json": b"{}", "sub/w.bin": b"w" * 70000}
    publish_hf(nginx, "org/tiny", "r1", files)
    monkeypatch.setenv("HF_ENDPOINT", nginx.url + "/hf")
    art = placeholder_artifact(mr_server.url, "hf-model")
    env = {
        "MODEL_SYNC_SOURCE_TYPE": "uri",
        "MODEL_SYNC_SOURCE_URI": "hf://org/tiny:r1",
        **oci_env(oci_registry, "models/hf:v1", "scratch"),
        **registry_env(mr_server.url),
        "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
    }
    r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    pulled, _, _ = pull_model_layers(oci_registry, "models/hf", "v1")
    assert pulled == {rel: sha(data) for rel, data in files.items()}


def test_secure_registry_with_token_and_custom_ca(
    tmp_path: Path,
    s3_server: SeaweedS3,
    oci_registry: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--registry-is-secure: bearer token on every call, TLS verified with --registry-custom-ca.

    The registry sits behind a TLS proxy that answers 401 without the expected token, in the
    position of kube-rbac-proxy in front of a secured registry.
    """
    token = "secure-registry-token-0987"  # noqa: S105 - test value
    proxy = BearerTLSProxy(mr_server.url, token)
    proxy.start()
    try:
        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
        s3_upload(s3_server, "models", "secure", {"w.bin": b"s" * 1000})
        meta = metadata_dir(tmp_path / "meta", {"RegisteredModel.name": "secure-model"})
        env = {
            **s3_source_env(s3_server, "models", "secure"),
            **oci_env(oci_registry, "models/secure:v1", "scratch"),
            "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": proxy.url,
            "MODEL_SYNC_REGISTRY_IS_SECURE": "true",
            "MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR": "MR_TOKEN_PATH",
            "MR_TOKEN_PATH": str(token_file),
            "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_model",
            "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta),
        }
        r = run_upload(tmp_path, env, caplog, capsys)  # no CA: TLS error, a configuration error
        assert r.code == EXIT_CONFIG
        assert "TLS error" in r.termination
        r = run_upload(
            tmp_path,
            {
                **env,
                "MODEL_SYNC_REGISTRY_CUSTOM_CA": str(proxy.ca_file),
                "MR_TOKEN_PATH": str(tmp_path / "meta" / "RegisteredModel.name"),
            },
            caplog,
            capsys,
        )
        assert r.code == EXIT_REGISTRY  # wrong token
        assert "HTTP 401" in r.termination
        r = run_upload(tmp_path, {**env, "MODEL_SYNC_REGISTRY_CUSTOM_CA": str(proxy.ca_file)}, caplog, capsys)
        assert r.code == EXIT_OK, r.termination
        assert token not in r.logs
    finally:
        proxy.stop()
    # what the registry holds: only the successful attempt registered anything
    back = official_client_read(mr_server.url, "secure-model", "1.0.0")
    assert back["model"]["id"] == r.json()["RegisteredModel"]["id"]
    assert back["artifact"]["state"] == "LIVE"
    assert back["artifact"]["uri"] == f"oci://{oci_registry.host}/models/secure:v1"
    assert INCOMPLETE_MARKER not in (back["model"]["custom_properties"] or {})


def test_oci_source_whiteouts_and_unsafe_links(
    tmp_path: Path,
    oci_registry: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lower = tar_layer(
        [
            ("bin/tool", b"not a model", None),
            ("models/a.txt", b"a", None),
            ("models/sub/b.txt", b"b", None),
            ("models/gone/x.txt", b"x", None),
        ]
    )
    upper = tar_layer(
        [
            ("models/.wh.a.txt", b"", None),
            ("models/.wh.gone", b"", None),
            ("./models/c.txt", b"c", None),
            ("models/sub/link", None, "b.txt"),
        ]
    )
    push_image(oci_registry, "src/layered", "v1", [lower, upper])
    evil = tar_layer([("models/ok.txt", b"ok", None), ("models/escape", None, "../../etc/passwd")])
    push_image(oci_registry, "src/evil", "v1", [evil])
    art = placeholder_artifact(mr_server.url, "layered-model")
    base = {
        "MODEL_SYNC_SOURCE_TYPE": "oci",
        "MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY": "false",
        **oci_env(oci_registry, "models/layered:v1", "scratch"),
        **registry_env(mr_server.url),
        "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
    }
    r = run_upload(
        tmp_path, {**base, "MODEL_SYNC_SOURCE_OCI_URI": f"{oci_registry.host}/src/layered:v1"}, caplog, capsys
    )
    assert r.code == EXIT_OK, r.termination
    pulled, _, _ = pull_model_layers(oci_registry, "models/layered", "v1")
    assert pulled == {"c.txt": sha(b"c"), "sub/b.txt": sha(b"b"), "sub/link": sha(b"b")}
    r = run_upload(tmp_path, {**base, "MODEL_SYNC_SOURCE_OCI_URI": f"{oci_registry.host}/src/evil:v1"}, caplog, capsys)
    assert r.code == EXIT_TRANSFER
    assert "points outside /models" in r.termination


# -- one layer per file, several in flight --------------------------------------------------


def _modelcar(reg: DistributionRegistry, ref: str, part: int, parallelism: int) -> OciModelcar:
    dest = OciDestination(uri=f"{reg.host}/{ref}", registry=reg.host, base_image="scratch", tls_verify=False)
    return OciModelcar(dest, timeout=20, chunk_size=part, parallelism=parallelism)


def test_one_layer_per_file_in_order_pushed_concurrently_in_bounded_memory(
    s3_server: SeaweedS3, oci_registry: DistributionRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several layers are uploaded at once from one S3 source; the manifest lists one layer per
    file in path order, a sub-directory file lands at /models/sub/file (its layer carries the
    directory entries above it), and the transfer buffers stay the source's parallelism + 1
    parts, whatever the number of layers in flight (``tracemalloc`` bounds the heap too)."""
    part, parallelism = 1024 * 1024, 3
    files = {
        "b.bin": os.urandom(3 * part + 1),
        "sub/file": os.urandom(2 * part + 513),
        "a.bin": os.urandom(3 * part),
        "sub/deeper/x.bin": os.urandom(4 * part - 7),
        "z.txt": b"z",
        "empty": b"",
    }
    s3_upload(s3_server, "models", "layers", files)
    loc = S3Location(
        bucket="models",
        key="layers",
        endpoint=s3_server.endpoint,
        access_key_id=SecretStr(ADMIN_KEY),
        secret_access_key=SecretStr(ADMIN_SECRET),
    )
    source = S3Source(loc, part_size=part, parallelism=parallelism, timeout=20)
    listed = source.files()
    car = _modelcar(oci_registry, "models/layers:v1", part, parallelism)

    in_flight, peak_in_flight, lock = 0, 0, threading.Lock()
    upload_stream = BlobUpload.upload_stream

    def counting(self: BlobUpload, chunks: Any, total: int) -> tuple[str, int]:  # noqa: ANN401
        nonlocal in_flight, peak_in_flight
        with lock:
            in_flight += 1
            peak_in_flight = max(peak_in_flight, in_flight)
        try:
            return upload_stream(self, chunks, total)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(BlobUpload, "upload_stream", counting)
    progress = Progress(None)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        car.push(listed, progress, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert progress.done == sum(map(len, files.values()))
    assert 2 <= peak_in_flight <= parallelism
    assert source.buffers.allocated <= parallelism + 1
    assert source.buffers.peak_in_use <= parallelism + 1
    assert peak < (parallelism + 2) * part, f"{peak} bytes allocated at the peak"

    pulled, manifest, config = pull_model_layers(oci_registry, "models/layers", "v1")
    assert pulled == {rel: sha(data) for rel, data in files.items()}
    assert [layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]] == [
        "models/a.bin",
        "models/b.bin",
        "models/empty",
        "models/sub/deeper/x.bin",
        "models/sub/file",
        "models/z.txt",
    ]
    assert len(config["history"]) == len(files)
    sub = manifest["layers"][4]
    with tarfile.open(fileobj=io.BytesIO(oci_registry.get_blob("models/layers", sub["digest"]))) as tar:
        members = tar.getmembers()
    assert [(m.name, m.isdir()) for m in members] == [
        ("models", True),
        ("models/sub", True),
        ("models/sub/file", False),
    ]
    assert members[2].size == len(files["sub/file"])

    # a new version with one file changed: the other files' layers are the same blobs
    files["b.bin"] = os.urandom(100)
    s3_upload(s3_server, "models", "layers", {"b.bin": files["b.bin"]})
    car2 = _modelcar(oci_registry, "models/layers:v2", part, parallelism)
    car2.push(S3Source(loc, part_size=part, parallelism=parallelism, timeout=20).files(), None, {})
    pulled2, manifest2, _ = pull_model_layers(oci_registry, "models/layers", "v2")
    assert pulled2 == {rel: sha(data) for rel, data in files.items()}
    changed = [i for i, (x, y) in enumerate(zip(manifest["layers"], manifest2["layers"], strict=True)) if x != y]
    assert changed == [1]


def test_a_failed_layer_stops_the_others_and_nothing_is_tagged(oci_registry: DistributionRegistry) -> None:
    blobs = {f"f{i}.bin": os.urandom(300_000) for i in range(6)}
    files = [SourceFile(k, len(v), lambda v=v: io.BytesIO(v)) for k, v in blobs.items()]  # type: ignore[misc]
    files[2] = SourceFile("f2.bin", 300_000, lambda: io.BytesIO(b"short"))
    car = _modelcar(oci_registry, "models/broken:v1", 65_536, 3)
    with pytest.raises(TransferError, match="ended early"):
        car.push(files, None, {})
    r = requests.get(f"{oci_registry.url}/v2/models/broken/manifests/v1", timeout=10)
    assert r.status_code == 404


def test_more_files_than_the_layer_cap_are_packed_in_runs(
    oci_registry: DistributionRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oci_dest, "MAX_MODEL_LAYERS", 3)
    blobs = {f"d{i % 2}/f{i}.bin": os.urandom(1000 + i) for i in range(7)}
    files = [SourceFile(k, len(v), lambda v=v: io.BytesIO(v)) for k, v in blobs.items()]  # type: ignore[misc]
    _modelcar(oci_registry, "models/packed:v1", 65_536, 2).push(files, None, {})
    pulled, manifest, _ = pull_model_layers(oci_registry, "models/packed", "v1")
    assert pulled == {rel: sha(data) for rel, data in blobs.items()}
    assert len(manifest["layers"]) == 3
    assert {layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]} == {"models"}


# -- layers the destination already holds ---------------------------------------------------


@pytest.mark.parametrize("kind", ["s3", "pvc"])
def test_layers_the_destination_holds_are_not_uploaded_again(
    kind: str,
    tmp_path: Path,
    s3_server: SeaweedS3,
    oci_registry: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same model to the same tag twice: a success that moves no model byte. A new version
    with one file rewritten (same size) and one added: only those two layers go out, and the
    image pulled back is the new model. A reused layer the registry lost is uploaded again."""
    files = {"config.json": b"{}", "w/a.bin": os.urandom(700_000), "w/b.bin": os.urandom(900_000)}
    repo = f"models/reuse-{kind}"
    arts = [placeholder_artifact(mr_server.url, f"reuse-{kind}-{i}") for i in range(4)]

    def upload(tag: str, art: str) -> tuple[Any, list[int]]:
        if kind == "s3":
            s3_upload(s3_server, "models", f"reuse-{kind}", files)
            source = s3_source_env(s3_server, "models", f"reuse-{kind}")
        else:
            source = {
                "MODEL_SYNC_SOURCE_TYPE": "pvc",
                "MODEL_SYNC_SOURCE_PATH": str(write_dir(tmp_path / "pvc", files)),
            }
        env = {
            **source,
            **oci_env(oci_registry, f"{repo}:{tag}", "scratch"),
            **registry_env(mr_server.url),
            "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
        }
        caplog.clear()
        with monkeypatch.context() as m:
            sizes = count_layer_uploads(m)
            result = run_upload(tmp_path, env, caplog, capsys)
        assert result.code == EXIT_OK, result.termination
        assert rest(mr_server.url, "GET", f"/model_artifacts/{art}")["state"] == "LIVE"
        assert "upload finished" in result.logs
        return result, sizes

    first, sizes = upload("v1", arts[0])
    assert len(sizes) == 3
    manifest_v1, _ = oci_registry.get_manifest(repo, "v1")

    again, sizes = upload("v1", arts[1])
    assert sizes == []  # not one model layer streamed
    assert "already holds the identical manifest" in again.logs
    assert sum("not uploaded again" in line for line in caplog.messages) == 3
    assert oci_registry.get_manifest(repo, "v1")[0] == manifest_v1
    assert again.json()["digest"] == first.json()["digest"]
    assert again.json()["ModelArtifact"]["uri"] == first.json()["ModelArtifact"]["uri"]

    files["w/a.bin"] = os.urandom(700_000)  # same path, same size, new bytes
    files["w/c.bin"] = b"new file"
    _, sizes = upload("v2", arts[2])
    assert len(sizes) == 2
    pulled, manifest_v2, _ = pull_model_layers(oci_registry, repo, "v2")
    assert pulled == {rel: sha(data) for rel, data in files.items()}
    by_title = {
        layer["annotations"]["org.opencontainers.image.title"]: layer["digest"] for layer in manifest_v2["layers"]
    }
    old_by_title = {
        layer["annotations"]["org.opencontainers.image.title"]: layer["digest"] for layer in manifest_v1["layers"]
    }
    assert by_title["models/w/b.bin"] == old_by_title["models/w/b.bin"]
    assert by_title["models/w/a.bin"] != old_by_title["models/w/a.bin"]
    assert pull_model_layers(oci_registry, repo, "v1")[0]["w/a.bin"] != pulled["w/a.bin"]  # v1 untouched

    # the registry lost a blob both tags refer to: it is uploaded again, not referenced blindly
    lost = by_title["models/w/b.bin"]
    resp = oci_registry.session().delete(f"{oci_registry.url}/v2/{repo}/blobs/{lost}", timeout=5)
    assert resp.status_code == 202, resp.text
    _, sizes = upload("v3", arts[3])
    assert len(sizes) == 1
    assert pull_model_layers(oci_registry, repo, "v3")[0] == {rel: sha(data) for rel, data in files.items()}


# -- registration into an S3 destination ----------------------------------------------------


@pytest.mark.parametrize("source_kind", ["s3", "uri", "hf"])
def test_create_model_then_version_into_s3(
    source_kind: str,
    tmp_path: Path,
    s3_server: SeaweedS3,
    nginx: NginxServer,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """create_model, then create_version of the same model, each copying the model into S3 and
    registering the s3:// URI; read back with the official client, objects checked by sha256."""
    name = f"to-s3-{source_kind}"
    client = s3_bucket(s3_server, "registered")

    def source(version: str, files: dict[str, bytes]) -> dict[str, str]:
        if source_kind == "s3":
            s3_upload(s3_server, "models", f"{name}/{version}", files)
            return s3_source_env(s3_server, "models", f"{name}/{version}")
        if source_kind == "uri":
            ((rel, data),) = files.items()
            return {
                "MODEL_SYNC_SOURCE_TYPE": "uri",
                "MODEL_SYNC_SOURCE_URI": nginx.publish(f"{name}/{version}/{rel}", data),
            }
        publish_hf(nginx, f"org/{name}", version, files)
        monkeypatch.setenv("HF_ENDPOINT", nginx.url + "/hf")
        return {"MODEL_SYNC_SOURCE_TYPE": "uri", "MODEL_SYNC_SOURCE_URI": f"hf://org/{name}:{version}"}

    def dest(version: str) -> dict[str, str]:
        return {
            "MODEL_SYNC_DESTINATION_TYPE": "s3",
            "MODEL_SYNC_DESTINATION_AWS_BUCKET": "registered",
            "MODEL_SYNC_DESTINATION_AWS_KEY": f"{name}/{version}",
            "MODEL_SYNC_DESTINATION_AWS_ENDPOINT": s3_server.endpoint,
            "MODEL_SYNC_DESTINATION_AWS_ACCESS_KEY_ID": ADMIN_KEY,
            "MODEL_SYNC_DESTINATION_AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
        }

    def check_objects(version: str, files: dict[str, bytes]) -> None:
        prefix = f"{name}/{version}/"
        assert {o.key: o.size for o in client.list_objects("registered", prefix)} == {
            prefix + rel: len(data) for rel, data in files.items()
        }
        for rel, data in files.items():
            assert sha(client.get_range("registered", prefix + rel, 0, len(data) - 1)) == sha(data)

    single = source_kind == "uri"
    v1 = {"model.bin": os.urandom(6 * 1024 * 1024 + 3)} if single else model_files(big=6 * 1024 * 1024 + 3)
    meta = metadata_dir(
        tmp_path / "meta",
        {"RegisteredModel.name": name, "ModelVersion.name": "v1", "ModelArtifact.model_format_name": "safetensors"},
    )
    r = run_upload(
        tmp_path,
        {
            **source("v1", v1),
            **dest("v1"),
            **registry_env(mr_server.url),
            "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_model",
            "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta),
        },
        caplog,
        capsys,
    )
    assert r.code == EXIT_OK, r.termination
    out1 = r.json()
    assert out1["uri"].startswith(f"s3://registered/{name}/v1?endpoint=")
    check_objects("v1", v1)
    assert ADMIN_SECRET not in r.logs

    v2 = {"model.bin": b"second version"} if single else {"config.json": b"{}", "sub/w.bin": b"w" * 5000}
    (meta / "ModelVersion.name").write_text("v2")
    r = run_upload(
        tmp_path,
        {
            **source("v2", v2),
            **dest("v2"),
            **registry_env(mr_server.url),
            "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_version",
            "MODEL_SYNC_MODEL_ID": out1["RegisteredModel"]["id"],
            "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta),
        },
        caplog,
        capsys,
    )
    assert r.code == EXIT_OK, r.termination
    out2 = r.json()
    assert out2["RegisteredModel"]["id"] == out1["RegisteredModel"]["id"]
    check_objects("v2", v2)
    for version, out in (("v1", out1), ("v2", out2)):
        back = official_client_read(mr_server.url, name, version)
        assert back["version"]["id"] == out["ModelVersion"]["id"]
        assert back["artifact"]["state"] == "LIVE"
        assert back["artifact"]["uri"] == out["uri"]
        assert back["artifact"]["model_format_name"] == "safetensors"


def test_http_source_by_etag(
    tmp_path: Path,
    nginx: NginxServer,
    oci_registry: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nginx's strong ETag identifies the file: the same file to the same tag is not uploaded
    again, a changed one is; and a file that changes while it is read fails the upload (each
    ranged GET carries ``If-Match``), never joining parts of two versions."""
    data = os.urandom(2 * 1024 * 1024 + 5)
    url = nginx.publish("etag/model.bin", data)
    path = nginx.root / "etag" / "model.bin"
    env = {
        "MODEL_SYNC_SOURCE_TYPE": "uri",
        "MODEL_SYNC_SOURCE_URI": url,
        **oci_env(oci_registry, "models/etag:v1", "scratch"),
        **registry_env(mr_server.url),
    }

    runs = itertools.count()

    def upload() -> list[int]:
        art = placeholder_artifact(mr_server.url, f"etag-{next(runs)}")
        with monkeypatch.context() as m:
            sizes = count_layer_uploads(m)
            r = run_upload(tmp_path, {**env, "MODEL_SYNC_MODEL_ARTIFACT_ID": art}, caplog, capsys)
        assert r.code == EXIT_OK, r.termination
        assert pull_model_layers(oci_registry, "models/etag", "v1")[0] == {"model.bin": sha(data)}
        return sizes

    assert len(upload()) == 1
    assert upload() == []  # same ETag: already there
    data = os.urandom(len(data))  # same size, new bytes, new modification time: a new ETag
    path.write_bytes(data)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    assert len(upload()) == 1

    # the file changes between the listing and the reads: refused, not spliced
    source = UriSource(url, storage_path=tmp_path / "scratch-direct", part_size=512 * 1024, parallelism=2, timeout=10)
    [listed] = source.files()
    assert listed.fingerprint is not None
    os.utime(path, (1_700_000_100, 1_700_000_100))
    with pytest.raises(TransferError, match="changed on the server while it was read"), listed.open() as stream:
        stream.read()
