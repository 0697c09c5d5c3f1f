"""The Kubeflow model registry server for tests, and what sits in front of it in production.

* :class:`RealRegistryServer`: the server binary (``model-registry proxy``, built from its Go
  module by ``hack/install-upload-backends.sh`` into the cache bin dir: ``make deps``) on a
  throwaway MariaDB or PostgreSQL (:mod:`tests.backends.databases`). It gets the DSN and the
  ``--embedmd-database-type`` flag the operator renders for a registry Deployment
  (:mod:`model_registry_operator.render.database`), the DSN through ``MR_EMBEDMD_DATABASE_DSN``.
  A missing binary fails with "run make deps": there is no stand-in.
* :class:`BearerTLSProxy`: nginx terminating TLS (certificate of a test CA) in front of a server
  and answering 401 to any request without the expected ``Authorization: Bearer <token>``, as
  kube-rbac-proxy / oauth-proxy do in front of a secured registry (they also review the token
  with the API server; this proxy knows the one valid token).

The server version the build script pins (v0.3.0, the newest the Go module proxy serves) has a
defect on PostgreSQL that MariaDB does not have: every lookup scoped to a parent
(``GET /model_version?name=&parentResourceId=``, ``/registered_models/{id}/versions``,
``/model_versions/{id}/artifacts``, ``/model_artifact?name=&parentResourceId=``) answers HTTP 500
``relation "parentcontext" does not exist`` (or ``"attribution"``): its raw SQL joins name the
mixed-case tables unquoted, which PostgreSQL folds to lower case (later releases quote them).
:data:`PARENT_LOOKUP_DEFECT` matches it. MariaDB is therefore the default database; the
PostgreSQL runs exercise the upload program's fallback to the global lists.

:func:`official_client_read` reads entities back with the official ``model-registry`` PyPI
client, installed in its own venv (it pins python-dateutil<3, the operator needs >=3).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import requests

from tests.backends.certs import CertificateAuthority
from tests.backends.databases import MariaDBServer, MissingServerBinaryError, PostgresServer
from tests.backends.http import NginxProcess
from tests.backends.process import LOOPBACK, ManagedProcess, cache_bin, free_port

API = "/api/model_registry/v1alpha3"
Database = Literal["mariadb", "postgres"]
DATABASES: tuple[Database, ...] = ("mariadb", "postgres")
PARENT_LOOKUP_DEFECT = re.compile(r'HTTP 500: .*relation "(parentcontext|attribution)" does not exist')
"""The PostgreSQL defect of the pinned server, as the upload program reports its HTTP 500 answers."""


def server_binary() -> Path:
    binary = cache_bin() / "model-registry"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise MissingServerBinaryError(f"model registry server {binary} not found: run make deps")
    return binary


class RealRegistryServer:
    """``model-registry proxy`` on 127.0.0.1 with its own throwaway database."""

    def __init__(self, workdir: Path, database: Database = "mariadb") -> None:
        self.workdir = workdir
        self.database: Database = database
        self.port = 0
        self.db: MariaDBServer | PostgresServer | None = None
        self.proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _dsn(self) -> tuple[str, str]:
        """``(--embedmd-database-type, DSN)`` for this database, in the form the operator renders
        (``postgresql://u:p@h:port/db?sslmode=disable``, ``u:p@tcp(h:port)/db?charset=utf8mb4``).
        Written here rather than imported from the operator: the upload program's tests run this
        server in their own environment, without the operator. The operator's own DSNs are run
        against the real server through the operator (tests/integration/test_flagship.py)."""
        db = self.db
        assert db is not None
        user, password = quote(db.user, safe=""), quote(db.password, safe="")
        if isinstance(db, PostgresServer):
            return "postgres", f"postgresql://{user}:{password}@{db.host}:{db.port}/{db.database}?sslmode=disable"
        return "mysql", f"{user}:{password}@tcp({db.host}:{db.port})/{db.database}?charset=utf8mb4"

    def start(self) -> None:
        binary = server_binary()
        self.db = PostgresServer() if self.database == "postgres" else MariaDBServer()
        try:
            self.db.start()
            db_type, dsn = self._dsn()
            self.port = free_port()
            env = {**os.environ, "MR_EMBEDMD_DATABASE_DSN": dsn}
            argv = [
                str(binary),
                "proxy",
                "--hostname",
                LOOPBACK,
                "--port",
                str(self.port),
                f"--embedmd-database-type={db_type}",
            ]
            self.proc = ManagedProcess(f"model-registry-{self.database}", argv, self.workdir, env=env)

            def ready() -> bool:
                # 200 once the server has connected to the database and migrated it
                return requests.get(self.url + "/readyz/health", timeout=1).status_code == 200

            self.proc.start(ready, timeout=60)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
        if self.db is not None:
            self.db.stop()
            self.db = None


@contextmanager
def registry_server(workdir: Path, database: Database = "mariadb") -> Iterator[RealRegistryServer]:
    """A started :class:`RealRegistryServer`; a missing binary raises :class:`MissingServerBinaryError`."""
    server = RealRegistryServer(workdir, database)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------
# TLS + bearer token in front of a registry (the kube-rbac-proxy position)

_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{8,}$")


class BearerTLSProxy(NginxProcess):
    """nginx: HTTPS on a free 127.0.0.1 port, 401 without ``Authorization: Bearer <token>``, else proxied.

    ``ca_file`` is the PEM of the test CA that signed the certificate (SAN ``IP:127.0.0.1``,
    ``DNS:localhost``); clients that do not trust it fail the TLS handshake.
    """

    scheme = "https"
    process_name = "nginx-bearer-proxy"

    def __init__(self, upstream: str, token: str) -> None:
        if not _TOKEN_RE.match(token):
            raise ValueError("token: at least 8 characters of the base64 / URL-safe alphabet")
        self.upstream = upstream
        self.token = token
        super().__init__("bearer-proxy-")
        self.ca_file = self.workdir / "ca.crt"

    def start(self) -> None:
        ca = CertificateAuthority("registry proxy test CA")
        self._cert, self._key = ca.issue_server().write(self.workdir / "tls", "server")
        self.ca_file.write_text(ca.cert_pem)
        super().start()

    def http_config(self) -> str:
        return f"""  server {{
    listen {LOOPBACK}:{self.port} ssl;
    ssl_certificate {self._cert};
    ssl_certificate_key {self._key};
    location / {{
      default_type text/plain;
      if ($http_authorization != "Bearer {self.token}") {{
        add_header WWW-Authenticate Bearer always;
        return 401 "Unauthorized\\n";
      }}
      proxy_pass {self.upstream};
    }}
  }}
"""

    def ready(self) -> bool:
        return requests.get(self.url + "/", timeout=1, verify=str(self.ca_file)).status_code == 401


# ---------------------------------------------------------------------------------------
# read-back with the official client

_READ_SCRIPT = r"""
import json, sys
from model_registry import ModelRegistry
url, port, name, version, ids = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
mr = ModelRegistry(url, port, author="test", is_secure=False)
if ids:
    # by id, through the client's own API layer (the by-name lookups need parent-scoped queries)
    rm = mr.async_runner(mr._api.get_registered_model_by_id(ids["model"]))
    mv = mr.async_runner(mr._api.get_model_version_by_id(ids["version"]))
    ma = mr.async_runner(mr._api.get_model_artifact_by_id(ids["artifact"]))
else:
    rm = mr.get_registered_model(name)
    mv = mr.get_model_version(name, version) if rm else None
    ma = mr.get_model_artifact(name, version) if mv else None
def dump(x):
    if x is None:
        return None
    d = {k: getattr(x, k) for k in ("id", "name", "description", "owner", "author", "uri", "model_format_name",
                                    "model_format_version", "model_source_kind", "model_source_name",
                                    "model_source_group", "storage_key", "storage_path") if hasattr(x, k)}
    state = getattr(x, "state", None)
    d["state"] = getattr(state, "value", state)
    d["custom_properties"] = getattr(x, "custom_properties", None)
    return d
print(json.dumps({"model": dump(rm), "version": dump(mv), "artifact": dump(ma)}, default=str))
"""


def client_python() -> Path:
    root = os.environ.get("MRO_CACHE_DIR") or str(Path.home() / ".cache" / "model-registry-operator")
    return Path(root) / "mr-client-venv" / "bin" / "python"


def official_client_read(url: str, name: str, version: str, *, ids: dict[str, str] | None = None) -> dict[str, Any]:
    """Read a model, version and artifact back with the official ``model-registry`` client.

    By name (the client's public lookups), or by id with ``ids`` (``model``, ``version``,
    ``artifact``): the way to read them from a server that cannot do parent-scoped lookups.
    """
    python = client_python()
    if not python.is_file():
        raise MissingServerBinaryError(f"official model-registry client venv {python} not found: run make deps")
    host, _, port = url.rpartition(":")
    out = subprocess.run(
        [str(python), "-c", _READ_SCRIPT, host, port, name, version, json.dumps(ids or {})],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise AssertionError(f"official client failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
