"""The model registry REST server for tests.

* ``RealRegistryServer``: the Kubeflow model registry server binary (``model-registry proxy``,
  built by ``hack/install-upload-backends.sh`` into the cache bin dir) on a throwaway
  PostgreSQL (:class:`tests.backends.databases.PostgresServer`).
* ``ContractRegistryServer``: an in-process server implementing the subset of the
  ``/api/model_registry/v1alpha3`` contract the upload program and the official Python client
  use (entities, find-by-name, 404/409, typed custom properties, PATCH merge). Used when the
  real binary could not be built (the Go module proxy does not serve the module everywhere).

:func:`registry_server` picks the real server when its binary exists (or when
``MRO_REQUIRE_REAL_REGISTRY=1``, which turns a missing binary into a failure).
:func:`official_client_read` reads entities back with the official ``model-registry`` PyPI
client, installed in its own venv (it pins python-dateutil<3, the operator needs >=3).
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from tests.backends.databases import MissingServerBinaryError, PostgresServer
from tests.backends.process import LOOPBACK, ManagedProcess, cache_bin, free_port

API = "/api/model_registry/v1alpha3"


class RealRegistryServer:
    kind = "real"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.db: PostgresServer | None = None
        self.proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        binary = cache_bin() / "model-registry"
        if not binary.is_file():
            raise MissingServerBinaryError(f"{binary} not found: run make deps")
        self.db = PostgresServer()
        self.db.start()
        self.port = free_port()
        env = {**os.environ, "MR_EMBEDMD_DATABASE_DSN": self.db.dsn + "?sslmode=disable"}
        argv = [str(binary), "proxy", "--hostname", LOOPBACK, "--port", str(self.port),
                "--embedmd-database-type", "postgres"]
        self.proc = ManagedProcess("model-registry", argv, self.workdir, env=env)

        def ready() -> bool:
            return requests.get(self.url + "/readyz/health", timeout=1).status_code == 200

        self.proc.start(ready, timeout=60)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
        if self.db is not None:
            self.db.stop()


# ---------------------------------------------------------------------------------------
# contract server

_STATES = {"LIVE", "ARCHIVED"}
_ART_STATES = {"UNKNOWN", "PENDING", "LIVE", "MARKED_FOR_DELETION", "DELETED", "ABANDONED", "REFERENCE"}
_INT_RE = re.compile(r"^-?([1-9][0-9]{0,8}|0)$")


class _Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_id = 1
        self.models: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, Any]] = {}
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.version_artifacts: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.merge_custom_properties = False
        """When true, PATCH merges customProperties instead of replacing them (both server styles)."""

    def patch(self, entity: dict[str, Any], body: dict[str, Any], immutable: tuple[str, ...]) -> None:
        _check_props(body.get("customProperties"))
        if self.merge_custom_properties and "customProperties" in body:
            body = {**body, "customProperties": {**entity.get("customProperties", {}), **body["customProperties"]}}
        entity.update({k: v for k, v in body.items() if k not in immutable})

    def new(self, body: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        now = "1700000000000"
        entity = {**body, **extra, "id": str(self.next_id), "createTimeSinceEpoch": now,
                  "lastUpdateTimeSinceEpoch": now}
        entity.setdefault("customProperties", {})
        self.next_id += 1
        return entity


class _Error(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _check_props(props: Any) -> None:  # noqa: ANN401
    if props is None:
        return
    if not isinstance(props, dict):
        raise _Error(400, "customProperties must be an object")
    for key, value in props.items():
        if not isinstance(value, dict) or "metadataType" not in value:
            raise _Error(400, f"customProperties[{key}]: missing metadataType")
        kind = value["metadataType"]
        if kind == "MetadataIntValue" and not _INT_RE.match(str(value.get("int_value", ""))):
            raise _Error(400, f"customProperties[{key}]: bad int_value")
        if kind not in ("MetadataIntValue", "MetadataDoubleValue", "MetadataStringValue", "MetadataBoolValue",
                        "MetadataStructValue", "MetadataProtoValue"):
            raise _Error(400, f"customProperties[{key}]: unknown metadataType {kind}")


class _Handler(BaseHTTPRequestHandler):
    store: _Store
    token: str | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401
        pass

    def _send(self, status: int, body: Any) -> None:  # noqa: ANN401
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(length) or b"{}")
        if not isinstance(data, dict):
            raise _Error(400, "body must be an object")
        return data

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        self.store.requests.append((method, path))
        if path in ("/readyz/health", "/readyz/isDirty"):
            self._send(200, {})
            return
        if self.token is not None and self.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(401, {"code": "401", "message": "unauthorized"})
            return
        if not path.startswith(API):
            self._send(404, {"code": "not found", "message": "not found"})
            return
        try:
            with self.store.lock:
                status, body = self._route(method, path[len(API):], query)
        except _Error as exc:
            status, body = exc.status, {"code": str(exc.status), "message": str(exc)}
        except (ValueError, KeyError) as exc:
            status, body = 400, {"code": "400", "message": f"bad request: {exc}"}
        self._send(status, body)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    # -- routing -----------------------------------------------------------------------

    def _route(self, method: str, path: str, q: dict[str, str]) -> tuple[int, Any]:
        s = self.store
        seg = [p for p in path.split("/") if p]
        if seg == ["registered_models"]:
            if method == "GET":
                return 200, _page(list(s.models.values()), q)
            body = self._body()
            if not body.get("name"):
                raise _Error(400, "name is required")
            if any(m["name"] == body["name"] for m in s.models.values()):
                raise _Error(409, f"registered model {body['name']!r} already exists")
            _check_props(body.get("customProperties"))
            if body.get("state", "LIVE") not in _STATES:
                raise _Error(400, "bad state")
            m = s.new(body, {"state": body.get("state", "LIVE")})
            s.models[m["id"]] = m
            return 201, m
        if seg == ["registered_model"]:
            for m in s.models.values():
                if ("name" in q and m["name"] == q["name"]) or ("externalId" in q and m.get("externalId") == q[
                        "externalId"]):
                    return 200, m
            raise _Error(404, "registered model not found")
        if len(seg) == 2 and seg[0] == "registered_models":
            found_m = s.models.get(seg[1])
            if found_m is None:
                raise _Error(404, f"registered model {seg[1]} not found")
            if method == "PATCH":
                s.patch(found_m, self._body(), ("id", "name"))
            return 200, found_m
        if len(seg) == 3 and seg[0] == "registered_models" and seg[2] == "versions":
            if seg[1] not in s.models:
                raise _Error(404, f"registered model {seg[1]} not found")
            return 200, _page([v for v in s.versions.values() if v["registeredModelId"] == seg[1]], q)
        if seg == ["model_versions"]:
            if method == "GET":
                return 200, _page(list(s.versions.values()), q)
            body = self._body()
            rm = str(body.get("registeredModelId", ""))
            if rm not in s.models:
                raise _Error(404, f"registered model {rm} not found")
            if not body.get("name"):
                raise _Error(400, "name is required")
            if any(v["name"] == body["name"] and v["registeredModelId"] == rm for v in s.versions.values()):
                raise _Error(409, f"model version {body['name']!r} already exists")
            _check_props(body.get("customProperties"))
            v = s.new(body, {"registeredModelId": rm, "state": body.get("state", "LIVE")})
            s.versions[v["id"]] = v
            s.version_artifacts[v["id"]] = []
            return 201, v
        if seg == ["model_version"]:
            for v in s.versions.values():
                if v["name"] == q.get("name") and v["registeredModelId"] == q.get("parentResourceId"):
                    return 200, v
            raise _Error(404, "model version not found")
        if len(seg) == 2 and seg[0] == "model_versions":
            found_v = s.versions.get(seg[1])
            if found_v is None:
                raise _Error(404, f"model version {seg[1]} not found")
            if method == "PATCH":
                s.patch(found_v, self._body(), ("id", "name", "registeredModelId"))
            return 200, found_v
        if len(seg) == 3 and seg[0] == "model_versions" and seg[2] == "artifacts":
            if seg[1] not in s.versions:
                raise _Error(404, f"model version {seg[1]} not found")
            if method == "GET":
                return 200, _page([s.artifacts[a] for a in s.version_artifacts[seg[1]]], q)
            body = self._body()
            return self._create_artifact(body, seg[1])
        if seg == ["model_artifacts"]:
            if method == "GET":
                return 200, _page(list(s.artifacts.values()), q)
            return self._create_artifact(self._body(), None)
        if seg == ["model_artifact"]:
            for a in s.artifacts.values():
                if a.get("name") == q.get("name") and (
                        "parentResourceId" not in q or a["id"] in s.version_artifacts.get(q["parentResourceId"], [])):
                    return 200, a
            raise _Error(404, "model artifact not found")
        if len(seg) == 2 and seg[0] in ("model_artifacts", "artifacts"):
            found_a = s.artifacts.get(seg[1])
            if found_a is None:
                raise _Error(404, f"model artifact {seg[1]} not found")
            if method == "PATCH":
                body = self._body()
                _check_props(body.get("customProperties"))
                if body.get("state", found_a["state"]) not in _ART_STATES:
                    raise _Error(400, "bad state")
                found_a.update({k: val for k, val in body.items() if k not in ("id", "name")})
            return 200, found_a
        raise _Error(404, f"no route {method} {path}")

    def _create_artifact(self, body: dict[str, Any], version_id: str | None) -> tuple[int, Any]:
        s = self.store
        if body.get("artifactType", "model-artifact") != "model-artifact":
            raise _Error(400, "unsupported artifactType")
        _check_props(body.get("customProperties"))
        state = body.get("state", "UNKNOWN")
        if state not in _ART_STATES:
            raise _Error(400, "bad state")
        if version_id is not None and body.get("name") and any(
                s.artifacts[x].get("name") == body["name"] for x in s.version_artifacts[version_id]):
            raise _Error(409, "artifact name already used in this version")
        a = s.new(body, {"artifactType": "model-artifact", "state": state})
        s.artifacts[a["id"]] = a
        if version_id is not None:
            s.version_artifacts[version_id].append(a["id"])
        return 201, a


def _page(items: list[dict[str, Any]], q: dict[str, str]) -> dict[str, Any]:
    size = int(q.get("pageSize") or 100)
    start = int(q.get("nextPageToken") or 0)
    chunk = items[start : start + size]
    token = str(start + size) if start + size < len(items) else ""
    return {"items": chunk, "nextPageToken": token, "pageSize": size, "size": len(chunk)}


class ContractRegistryServer:
    """In-process contract server; optionally TLS (``cert``/``key`` files) and a required bearer token."""

    kind = "contract"

    def __init__(self, *, cert: Path | None = None, key: Path | None = None, token: str | None = None) -> None:
        self.store = _Store()
        handler = type("Handler", (_Handler,), {"store": self.store, "token": token})
        self.httpd = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self.tls = cert is not None
        if cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def registry_server(workdir: Path) -> Iterator[RealRegistryServer | ContractRegistryServer]:
    server: RealRegistryServer | ContractRegistryServer
    if (cache_bin() / "model-registry").is_file() or os.environ.get("MRO_REQUIRE_REAL_REGISTRY") == "1":
        server = RealRegistryServer(workdir)
    else:
        server = ContractRegistryServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------
# read-back with the official client

_READ_SCRIPT = r"""
import json, sys
from model_registry import ModelRegistry
url, port, name, version = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
mr = ModelRegistry(url, port, author="test", is_secure=False)
rm = mr.get_registered_model(name)
mv = mr.get_model_version(name, version) if rm else None
ma = mr.get_model_artifact(name, version) if mv else None
def dump(x):
    if x is None:
        return None
    d = {k: getattr(x, k) for k in ("id", "name", "description", "owner", "author", "uri", "model_format_name",
                                    "model_format_version", "model_source_kind", "model_source_name",
                                    "storage_key", "storage_path") if hasattr(x, k)}
    state = getattr(x, "state", None)
    d["state"] = getattr(state, "value", state)
    d["custom_properties"] = getattr(x, "custom_properties", None)
    return d
print(json.dumps({"model": dump(rm), "version": dump(mv), "artifact": dump(ma)}, default=str))
"""


def client_python() -> Path:
    root = os.environ.get("MRO_CACHE_DIR") or str(Path.home() / ".cache" / "model-registry-operator")
    return Path(root) / "mr-client-venv" / "bin" / "python"


def official_client_read(url: str, name: str, version: str) -> dict[str, Any]:
    """Read a model, version and artifact back with the official ``model-registry`` client."""
    python = client_python()
    if not python.is_file():
        raise MissingServerBinaryError(f"official model-registry client venv {python} not found: run make deps")
    host, _, port = url.rpartition(":")
    out = subprocess.run([str(python), "-c", _READ_SCRIPT, host, port, name, version], check=False,
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"official client failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
