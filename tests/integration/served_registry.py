"""A ModelRegistry whose registry container the simulated node runs as the real server process.

Shared by the end-to-end tests that need a working registry behind a ModelRegistry: the
manifests (database password Secret and the ModelRegistry on that database), its Pod, a port
free on every address, and listings by the official Python client. The server binary itself is
the ``registry_binary`` fixture (conftest.py).
"""

from __future__ import annotations

import json
import socket
import subprocess
from typing import Any

import yaml

from model_registry_operator.kube import lookup
from tests.backends.databases import MariaDBServer, PostgresServer
from tests.backends.registry_server import client_python

from .kube import Cluster

DEPLOYMENT = lookup("apps/v1", "Deployment")
POD = lookup("v1", "Pod")
REGISTRY_IMAGE = "localhost/sim-exec/model-registry:flagship"
"""The registry container's image: ``sim-exec`` makes the node run it as a process; the test
declares the image to provide ``/model-registry`` (``provide_image_files``)."""

_LIST_SCRIPT = r"""
import json, sys
from model_registry import ModelRegistry
url, port, name, versions = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "versions"
mr = ModelRegistry(url, port, author="test", is_secure=False)
listed = {"models": sorted(m.name for m in mr.get_registered_models())}
if versions:
    listed["versions"] = sorted(v.name for v in mr.get_model_versions(name))
print(json.dumps(listed))
"""


def manifests(namespace: str, name: str, port: int, db: PostgresServer | MariaDBServer) -> str:
    """The database password Secret and a ModelRegistry ``name`` on that database, served by the real binary."""
    connection = {
        "host": db.host,
        "port": db.port,
        "database": db.database,
        "username": db.user,
        "passwordSecret": {"name": "registry-db", "key": "password"},
    }
    if isinstance(db, PostgresServer):
        database_spec = {"postgres": {**connection, "sslMode": "disable"}}
    else:
        database_spec = {"mysql": connection}
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "registry-db", "namespace": namespace},
            "stringData": {"password": db.password},
        },
        {
            "apiVersion": "modelregistry.opendatahub.io/v1beta1",
            "kind": "ModelRegistry",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"rest": {"port": port, "image": REGISTRY_IMAGE}, **database_spec},
        },
    ]
    return yaml.safe_dump_all(docs)


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def registry_pod(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The one Pod of ModelRegistry ``name``'s Deployment."""
    deployment = cluster.get(DEPLOYMENT, namespace, name)
    assert deployment is not None
    labels = deployment["spec"]["selector"]["matchLabels"]
    pods = cluster.list(POD, namespace, ",".join(f"{k}={v}" for k, v in labels.items()))
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def host_free_port() -> int:
    """A port free on every address: the registry binds it on 0.0.0.0 of the host network."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))  # noqa: S104
        port: int = s.getsockname()[1]
        return port


def official_client_list(url: str, name: str, *, versions: bool) -> dict[str, Any]:
    """Registered models (and, with ``versions``, the versions of ``name``) listed by the official client."""
    host, _, port = url.rpartition(":")
    what = "versions" if versions else "models"
    out = subprocess.run(
        [str(client_python()), "-c", _LIST_SCRIPT, host, port, name, what],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, f"official client failed:\n{out.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
