"""The registration intents against the real model registry server, on MariaDB and on PostgreSQL.

Every test runs once per database (module fixture ``registry``). The model moves from a local
directory (the PVC source) to the distribution registry; what matters here is what the registry
holds afterwards, read back by id with the official client and over REST.

On PostgreSQL the pinned server cannot do lookups scoped to a parent
(:data:`~tests.backends.registry_server.PARENT_LOOKUP_DEFECT`): there the upload program
searches the global lists instead, so the intents that need such a lookup (``create_version``,
resuming an unfinished ``create_model``) must work on both databases alike.
:func:`test_parent_lookups_as_expected` pins which database has the defect, so that the
fallback stays exercised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from model_registry_upload.errors import EXIT_CONFIG, EXIT_OK, EXIT_REGISTRY, EXIT_TRANSFER
from model_registry_upload.registration import INCOMPLETE_MARKER
from tests.backends.oci import DistributionRegistry
from tests.backends.registry_server import (
    API,
    DATABASES,
    PARENT_LOOKUP_DEFECT,
    Database,
    RealRegistryServer,
    official_client_read,
)

from .helpers import metadata_dir, pull_model_layers, registry_env, rest, run_upload, sha, write_dir

SERVES_PARENT_LOOKUPS: dict[Database, bool] = {"mariadb": True, "postgres": False}
"""Whether the pinned server answers parent-scoped lookups on that database."""

FILES = {"config.json": b'{"architectures": ["Tiny"]}', "weights/w.bin": b"w" * 70_000}


@pytest.fixture(scope="module", params=DATABASES)
def registry(request: pytest.FixtureRequest) -> RealRegistryServer:
    """The session's server on that database (``mr_server`` is the MariaDB one)."""
    server: RealRegistryServer = request.getfixturevalue(
        "mr_server" if request.param == "mariadb" else "mr_server_postgres"
    )
    return server


@pytest.fixture
def source(tmp_path: Path) -> dict[str, str]:
    return {"MODEL_SYNC_SOURCE_TYPE": "pvc", "MODEL_SYNC_SOURCE_PATH": str(write_dir(tmp_path / "pvc", FILES))}


def destination(reg: DistributionRegistry, repo: str, base: str = "scratch") -> dict[str, str]:
    return {
        "MODEL_SYNC_DESTINATION_TYPE": "oci",
        "MODEL_SYNC_DESTINATION_OCI_URI": f"{reg.host}/{repo}:v1",
        "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": base,
        "MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY": "false",
    }


def create_model_env(
    tmp_path: Path, registry: RealRegistryServer, oci: DistributionRegistry, name: str, **meta: str
) -> dict[str, str]:
    values = {"RegisteredModel.name": name, "ModelVersion.name": "v1", **meta}
    return {
        **destination(oci, f"reg/{name}"),
        **registry_env(registry.url),
        "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_model",
        "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(metadata_dir(tmp_path / f"meta-{name}", values)),
    }


def pushed_tags(oci: DistributionRegistry, repo: str) -> list[str]:
    resp = oci.session().get(f"{oci.url}/v2/{repo}/tags/list", timeout=5)
    if resp.status_code == 404:
        return []
    resp.raise_for_status()
    return list(resp.json().get("tags") or [])


def listed(registry: RealRegistryServer, path: str) -> list[dict[str, Any]]:
    """A whole (unscoped) list: these work on both databases."""
    return list(rest(registry.url, "GET", f"{path}?pageSize=1000").get("items") or [])


def model_named(registry: RealRegistryServer, name: str) -> dict[str, Any] | None:
    return next((m for m in listed(registry, "/registered_models") if m["name"] == name), None)


def versions_of(registry: RealRegistryServer, model_id: str) -> list[dict[str, Any]]:
    return [v for v in listed(registry, "/model_versions") if v["registeredModelId"] == model_id]


def artifacts_named(registry: RealRegistryServer, name: str) -> list[dict[str, Any]]:
    return [a for a in listed(registry, "/model_artifacts") if a.get("name") == name]


def read_back(registry: RealRegistryServer, ids: dict[str, Any]) -> dict[str, Any]:
    return official_client_read(
        registry.url,
        "",
        "",
        ids={
            "model": ids["RegisteredModel"]["id"],
            "version": ids["ModelVersion"]["id"],
            "artifact": ids["ModelArtifact"]["id"],
        },
    )


# ------------------------------------------------------------------------------------------


def test_parent_lookups_as_expected(registry: RealRegistryServer) -> None:
    """The defect the other tests expect on PostgreSQL is there, and only there."""
    model = rest(registry.url, "POST", "/registered_models", {"name": f"probe-{registry.database}"})
    resp = requests.get(f"{registry.url}{API}/registered_models/{model['id']}/versions", timeout=10)
    if SERVES_PARENT_LOOKUPS[registry.database]:
        assert resp.status_code == 200, resp.text
    else:
        assert resp.status_code == 500, (
            f"the server now serves parent-scoped lookups on {registry.database}: set "
            f"SERVES_PARENT_LOOKUPS[{registry.database!r}] = True and update tests/backends/registry_server.py"
        )
        assert PARENT_LOOKUP_DEFECT.search(f"HTTP 500: {resp.json()['message']}"), resp.text


def test_create_model_then_create_version(
    tmp_path: Path,
    registry: RealRegistryServer,
    oci_registry: DistributionRegistry,
    source: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"reg-{registry.database}"
    env = {
        **source,
        **create_model_env(
            tmp_path,
            registry,
            oci_registry,
            name,
            **{
                "RegisteredModel.description": "tiny",
                "RegisteredModel.owner": "team-r",
                "RegisteredModel.customProperties": json.dumps({"size": 7, "ok": True, "tags": ["a"]}),
                "ModelVersion.author": "bob",
                "ModelVersion.description": "first",
                "ModelArtifact.modelFormatName": "onnx",
                "ModelArtifact.modelFormatVersion": "1",
                "ModelArtifact.modelSourceKind": "test",
                "ModelArtifact.modelSourceName": name,
            },
        ),
    }
    r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    out = r.json()
    back = read_back(registry, out)
    assert (back["model"]["name"], back["model"]["owner"], back["model"]["description"]) == (name, "team-r", "tiny")
    assert back["model"]["custom_properties"] == {"size": 7, "ok": True, "tags": '["a"]'}  # no marker left
    assert (back["version"]["name"], back["version"]["author"]) == ("v1", "bob")
    assert not back["version"]["custom_properties"]  # no marker left
    assert back["artifact"]["state"] == "LIVE"
    assert back["artifact"]["uri"] == out["uri"] == f"oci://{oci_registry.host}/reg/{name}:v1"
    assert (back["artifact"]["model_format_name"], back["artifact"]["model_format_version"]) == ("onnx", "1")
    assert (back["artifact"]["model_source_kind"], back["artifact"]["model_source_name"]) == ("test", name)
    pulled, _, _ = pull_model_layers(oci_registry, f"reg/{name}", "v1")
    assert pulled == {rel: sha(data) for rel, data in FILES.items()}

    # create_version under it
    model_id = out["RegisteredModel"]["id"]
    (tmp_path / f"meta-{name}" / "ModelVersion.name").write_text("v2")
    env2 = {
        **env,
        **destination(oci_registry, f"reg/{name}-v2"),
        "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_version",
        "MODEL_SYNC_MODEL_ID": model_id,
    }
    caplog.clear()
    r = run_upload(tmp_path, env2, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    fell_back = any("searching its global lists instead" in m for m in caplog.messages)
    assert fell_back == (not SERVES_PARENT_LOOKUPS[registry.database])
    out2 = r.json()
    assert out2["RegisteredModel"]["id"] == model_id
    back2 = read_back(registry, out2)
    assert back2["version"]["name"] == "v2"
    assert not back2["version"]["custom_properties"]
    assert back2["artifact"]["state"] == "LIVE"
    assert back2["artifact"]["uri"] == f"oci://{oci_registry.host}/reg/{name}-v2:v1"
    assert back2["artifact"]["name"] == name  # the model's name, like the first version's artifact
    assert sorted(v["name"] for v in versions_of(registry, model_id)) == ["v1", "v2"]
    if SERVES_PARENT_LOOKUPS[registry.database]:  # the client's own lookups by name are parent-scoped
        by_name = official_client_read(registry.url, name, "v2")
        assert by_name["artifact"]["id"] == out2["ModelArtifact"]["id"]

    # the same version again: refused before any byte moves
    r = run_upload(tmp_path, {**env2, **destination(oci_registry, f"reg/{name}-again")}, caplog, capsys)
    assert r.code == EXIT_REGISTRY
    assert "ModelVersion with name 'v2' already exists" in r.termination
    assert pushed_tags(oci_registry, f"reg/{name}-again") == []


def test_update_artifact_success_and_failures(
    tmp_path: Path,
    registry: RealRegistryServer,
    oci_registry: DistributionRegistry,
    source: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"upd-{registry.database}"
    model = rest(registry.url, "POST", "/registered_models", {"name": name})
    version = rest(registry.url, "POST", "/model_versions", {"name": "v1", "registeredModelId": model["id"]})
    live = rest(
        registry.url,
        "POST",
        f"/model_versions/{version['id']}/artifacts",
        {"artifactType": "model-artifact", "name": name, "uri": "oci://old/model:v0", "state": "LIVE"},
    )
    placeholder = rest(registry.url, "POST", "/model_versions", {"name": "v2", "registeredModelId": model["id"]})
    pending = rest(
        registry.url,
        "POST",
        f"/model_versions/{placeholder['id']}/artifacts",
        {"artifactType": "model-artifact", "name": name, "uri": "PLACEHOLDER"},
    )
    base = {**source, **destination(oci_registry, f"reg/{name}"), **registry_env(registry.url)}

    # a failure during the transfer (a base image the registry does not have): the LIVE
    # artifact keeps its state and URI, the placeholder is ABANDONED
    broken = {**base, "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": f"{oci_registry.host}/no/such-base:1"}
    r = run_upload(tmp_path, {**broken, "MODEL_SYNC_MODEL_ARTIFACT_ID": live["id"]}, caplog, capsys)
    assert r.code == EXIT_TRANSFER, r.termination
    got = rest(registry.url, "GET", f"/model_artifacts/{live['id']}")
    assert (got["state"], got["uri"]) == ("LIVE", "oci://old/model:v0")
    r = run_upload(tmp_path, {**broken, "MODEL_SYNC_MODEL_ARTIFACT_ID": pending["id"]}, caplog, capsys)
    assert r.code == EXIT_TRANSFER, r.termination
    assert rest(registry.url, "GET", f"/model_artifacts/{pending['id']}")["state"] == "ABANDONED"

    # unknown artifact: refused before any byte moves
    r = run_upload(tmp_path, {**base, "MODEL_SYNC_MODEL_ARTIFACT_ID": "987654"}, caplog, capsys)
    assert r.code == EXIT_REGISTRY
    assert "ModelArtifact with ID '987654' not found" in r.termination
    assert pushed_tags(oci_registry, f"reg/{name}") == []

    r = run_upload(tmp_path, {**base, "MODEL_SYNC_MODEL_ARTIFACT_ID": pending["id"]}, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    back = read_back(
        registry, {"RegisteredModel": model, "ModelVersion": placeholder, "ModelArtifact": {"id": pending["id"]}}
    )
    assert (back["artifact"]["state"], back["artifact"]["uri"]) == ("LIVE", f"oci://{oci_registry.host}/reg/{name}:v1")
    assert back["artifact"]["name"] == name  # untouched
    got = rest(registry.url, "GET", f"/model_artifacts/{live['id']}")
    assert (got["state"], got["uri"]) == ("LIVE", "oci://old/model:v0")  # the other one untouched


def test_create_model_failing_mid_transfer_then_retried(
    tmp_path: Path,
    registry: RealRegistryServer,
    oci_registry: DistributionRegistry,
    source: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The entities exist, the push fails: ABANDONED and marked; a retry resumes with them."""
    name = f"resume-{registry.database}"
    env = {
        **source,
        **create_model_env(tmp_path, registry, oci_registry, name, **{"ModelArtifact.modelFormatName": "onnx"}),
    }
    r = run_upload(
        tmp_path, {**env, "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": f"{oci_registry.host}/no/base:1"}, caplog, capsys
    )
    assert r.code == EXIT_TRANSFER, r.termination
    assert "no/base" in r.termination
    model = model_named(registry, name)
    assert model is not None
    assert model["customProperties"][INCOMPLETE_MARKER]["string_value"] == "true"
    [version] = versions_of(registry, model["id"])
    assert version["customProperties"][INCOMPLETE_MARKER]["string_value"] == "true"
    [artifact] = artifacts_named(registry, name)
    assert artifact["state"] == "ABANDONED"

    r = run_upload(tmp_path, env, caplog, capsys)  # the same upload again, now with a base that exists
    assert r.code == EXIT_OK, r.termination
    out = r.json()
    assert (out["RegisteredModel"]["id"], out["ModelVersion"]["id"], out["ModelArtifact"]["id"]) == (
        model["id"],
        version["id"],
        artifact["id"],
    )
    back = read_back(registry, out)
    assert back["artifact"]["state"] == "LIVE"
    assert back["artifact"]["model_format_name"] == "onnx"
    assert INCOMPLETE_MARKER not in (back["model"]["custom_properties"] or {})
    assert INCOMPLETE_MARKER not in (back["version"]["custom_properties"] or {})
    assert len(artifacts_named(registry, name)) == 1

    # complete now: the name is really taken
    r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_REGISTRY
    assert f"RegisteredModel with name '{name}' already exists" in r.termination


def test_failures_before_any_entity(
    tmp_path: Path,
    registry: RealRegistryServer,
    oci_registry: DistributionRegistry,
    source: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Refused uploads create nothing and push nothing."""
    db = registry.database
    taken = rest(registry.url, "POST", "/registered_models", {"name": f"taken-{db}"})
    r = run_upload(
        tmp_path, {**source, **create_model_env(tmp_path, registry, oci_registry, f"taken-{db}")}, caplog, capsys
    )
    assert r.code == EXIT_REGISTRY
    assert f"RegisteredModel with name 'taken-{db}' already exists (ID: {taken['id']})" in r.termination
    assert versions_of(registry, taken["id"]) == []

    env = {
        **source,
        **destination(oci_registry, f"reg/none-{db}"),
        **registry_env(registry.url),
        "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_version",
        "MODEL_SYNC_MODEL_ID": "987654",
        "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(metadata_dir(tmp_path / "meta-v", {"ModelVersion.name": "v1"})),
    }
    r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_REGISTRY
    assert "RegisteredModel with ID '987654' not found" in r.termination

    missing = {"MODEL_SYNC_SOURCE_TYPE": "pvc", "MODEL_SYNC_SOURCE_PATH": str(tmp_path / "no-such-dir")}
    r = run_upload(
        tmp_path, {**create_model_env(tmp_path, registry, oci_registry, f"nosource-{db}"), **missing}, caplog, capsys
    )
    assert r.code == EXIT_CONFIG
    assert "does not exist" in r.termination
    assert model_named(registry, f"nosource-{db}") is None
    assert pushed_tags(oci_registry, f"reg/none-{db}") == pushed_tags(oci_registry, f"reg/nosource-{db}") == []


def test_names_are_matched_exactly(
    tmp_path: Path,
    registry: RealRegistryServer,
    oci_registry: DistributionRegistry,
    source: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The server looks names up with SQL LIKE: ``_`` must not find (or resume) a model named with ``-``."""
    db = registry.database
    done = rest(registry.url, "POST", "/registered_models", {"name": f"like-{db}-a"})
    r = run_upload(
        tmp_path, {**source, **create_model_env(tmp_path, registry, oci_registry, f"like_{db}_a")}, caplog, capsys
    )
    assert r.code == EXIT_OK, r.termination
    assert r.json()["RegisteredModel"]["id"] != done["id"]

    # an unfinished upload of another model whose name LIKE-matches: not resumed
    other = f"like-{db}-b"
    r = run_upload(
        tmp_path,
        {
            **source,
            **create_model_env(tmp_path, registry, oci_registry, other),
            "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": f"{oci_registry.host}/no/base:1",
        },
        caplog,
        capsys,
    )
    assert r.code == EXIT_TRANSFER
    unfinished = model_named(registry, other)
    assert unfinished is not None
    r = run_upload(
        tmp_path, {**source, **create_model_env(tmp_path, registry, oci_registry, f"like_{db}_b")}, caplog, capsys
    )
    assert r.code == EXIT_OK, r.termination
    out = r.json()
    assert out["RegisteredModel"]["id"] != unfinished["id"]
    assert read_back(registry, out)["model"]["name"] == f"like_{db}_b"
    assert [a["state"] for a in artifacts_named(registry, other)] == ["ABANDONED"]  # left alone

    # versions too: "v_1" is not "v11"
    model_id = done["id"]
    rest(registry.url, "POST", "/model_versions", {"name": "v11", "registeredModelId": model_id})
    env = {
        **source,
        **destination(oci_registry, f"reg/like-{db}-v"),
        **registry_env(registry.url),
        "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_version",
        "MODEL_SYNC_MODEL_ID": model_id,
        "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(metadata_dir(tmp_path / "meta-like-v", {"ModelVersion.name": "v_1"})),
    }
    r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    assert sorted(v["name"] for v in versions_of(registry, model_id)) == ["v11", "v_1"]
