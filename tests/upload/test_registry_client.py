"""The registry client of the upload program (the official client's API) against the real server:
calls from many threads at once (the layer journal records from the push's workers), the
messages of a refused and of an unreachable registry, and no process-wide asyncio patching."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from model_registry_upload.config import RegistryConfig
from model_registry_upload.errors import RegistryError
from model_registry_upload.metadata import string_value
from model_registry_upload.registry import RegistryClient
from tests.backends.registry_server import RealRegistryServer, official_client_read

from .helpers import rest


def client(url: str) -> RegistryClient:
    return RegistryClient(RegistryConfig(url=url, is_secure=False), timeout=10)


def test_calls_from_many_threads(mr_server: RealRegistryServer) -> None:
    """Calls at once from 8 threads on the one event loop, each to its own artifact (the journal
    serialises the records of one artifact)."""
    mr = client(mr_server.url)
    mr.probe()
    model = mr.create_registered_model({"name": "threads-model", "state": "LIVE"})
    version = mr.create_model_version({"name": "v1", "registeredModelId": model["id"], "state": "LIVE"})
    artifacts = [
        mr.create_version_artifact(
            version["id"], {"artifactType": "model-artifact", "name": f"threads-{i}", "uri": f"oci://h/r:{i}"}
        )["id"]
        for i in range(8)
    ]

    def patch(i: int) -> str:
        body = {"artifactType": "model-artifact", "state": "LIVE", "customProperties": {"n": string_value(str(i))}}
        after = mr.update_model_artifact(artifacts[i], body)
        again = mr.get_model_artifact(artifacts[i]) or {}
        assert again["customProperties"] == after["customProperties"]
        return str(after["customProperties"]["n"]["string_value"])

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(patch, range(8))) == [str(i) for i in range(8)]
    assert mr.find_registered_model("threads-model") == mr.get_registered_model(model["id"])
    assert [v["id"] for v in mr.list_versions(model["id"])] == [version["id"]]
    assert sorted(a["id"] for a in mr.version_artifacts(version["id"]) or []) == sorted(artifacts)
    back = official_client_read(mr_server.url, "threads-model", "v1")
    assert back["model"]["id"] == model["id"]
    assert "nest_asyncio2" not in sys.modules  # the client's ModelRegistry class would patch asyncio


def test_a_refused_call_names_method_path_and_the_servers_message(mr_server: RealRegistryServer) -> None:
    mr = client(mr_server.url)
    assert mr.get_model_artifact("987654321") is None
    with pytest.raises(RegistryError) as info:
        mr.update_model_artifact("987654321", {"artifactType": "model-artifact", "state": "LIVE"})
    assert info.value.status == 404
    assert str(info.value).startswith("model registry PATCH /model_artifacts/987654321 failed: HTTP 404: ")
    taken = rest(mr_server.url, "POST", "/registered_models", {"name": "client-taken"})
    with pytest.raises(RegistryError, match=r"^model registry POST /registered_models failed: HTTP 409") as info:
        mr.create_registered_model({"name": "client-taken"})
    assert info.value.status == 409
    found = mr.find_registered_model("client-taken")
    assert found is not None
    assert (found["id"], found["name"]) == (taken["id"], "client-taken")


def test_an_unreachable_registry() -> None:
    started = time.monotonic()
    with pytest.raises(RegistryError) as info:
        client("http://127.0.0.1:9").probe()
    assert str(info.value).startswith("model registry unreachable at http://127.0.0.1:9/api/model_registry/v1alpha3: ")
    assert time.monotonic() - started < 10
