"""The flagship end-to-end test: a real model registry server, deployed by the operator, used by an upload.

What is real here:

* the operator (a process) renders the ModelRegistry's Deployment, Service and DSN Secret;
* the simulated node runs the Deployment's ``rest-container`` as the real ``model-registry``
  server process: its image (``sim-exec``) is declared to provide ``/model-registry`` (the binary
  ``hack/install-upload-backends.sh`` builds), so the rendered ``command`` / ``args`` and the
  ``MR_EMBEDMD_DATABASE_DSN`` read from the operator's Secret run unmodified, against a
  throwaway PostgreSQL (and, as a second run, MariaDB);
* the Pod becomes Ready only through the rendered startup and readiness probes
  (``/readyz/isDirty``, ``/readyz/health``, which query the database), and ``Available=True``
  follows from it through the Deployment and EndpointSlice controllers;
* a ModelUploadJob naming the registry (``spec.registry.name``) copies a model from SeaweedFS S3
  to an OCI modelcar in a local distribution registry and registers it through
  ``http://<name>.<ns>.svc.cluster.local:<port>``, the address the operator renders, which the
  process container resolves through its private ``/etc/hosts`` (Service names of the node);
* the official ``model-registry`` Python client reads the result back.

The pinned server (v0.3.0) cannot answer parent-scoped lookups on PostgreSQL (HTTP 500
``relation "parentcontext" / "attribution" does not exist``, see
:mod:`tests.backends.registry_server`): there the client reads the version and the artifact by
id, through its own API layer. The MariaDB run reads them by name through the client's public
methods, and lists the versions, so both ways of reading are covered.

The binaries (control plane, registry server, PostgreSQL, SeaweedFS, docker-registry, the
client's venv) come from ``make deps``; a missing one fails the test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from model_registry_devcluster.simnode import SimulatedNode
from tests.backends.databases import MariaDBServer, PostgresServer
from tests.backends.models import model_files, s3_upload
from tests.backends.oci import DistributionRegistry
from tests.backends.registry_server import API, client_python, official_client_read
from tests.backends.s3 import SeaweedS3

from .kube import Cluster
from .served_registry import (
    DEPLOYMENT,
    REGISTRY_IMAGE,
    condition,
    host_free_port,
    manifests,
    official_client_list,
    registry_pod,
)
from .uploads import BUCKET, s3_to_oci_spec, secret_docs, upload_doc, wait_succeeded

pytestmark = pytest.mark.integration

NAME = "flagship"


@pytest.fixture(params=["postgres", "mariadb"])
def database(request: pytest.FixtureRequest) -> Iterator[PostgresServer | MariaDBServer]:
    """A throwaway database server for the registry (stopped at the end of the test, if still up)."""
    server = PostgresServer() if request.param == "postgres" else MariaDBServer()
    with server:
        yield server


def seconds(timestamp: str) -> float:
    return dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def upload_manifests(namespace: str, s3: SeaweedS3, oci: DistributionRegistry, base_image: str) -> str:
    spec = s3_to_oci_spec(
        {"name": NAME, "author": "flagship-test"},
        oci.host,
        base_image,
        f"{namespace}/llm",
        f"{namespace}/llm",
        {"name": f"{namespace}-llm", "description": "the flagship model"},
    )
    docs = [*secret_docs(namespace, s3.endpoint, oci.host), upload_doc("llm", spec, namespace)]
    return yaml.safe_dump_all(docs)


def test_real_registry_serves_a_model_uploaded_by_a_job(
    cluster: Cluster,
    namespace: str,
    sim_node: SimulatedNode,
    registry_binary: Path,
    database: PostgresServer | MariaDBServer,
    s3: SeaweedS3,
    oci: DistributionRegistry,
) -> None:
    """Deploy, become Available through the real probes, upload, read back with the official client.

    ``rest.port`` is a free port picked for this run: the registry container is a process on the
    host network here and binds ``0.0.0.0:<rest.port>`` (the rendered ``--hostname=0.0.0.0``),
    so a fixed port could collide with anything else listening on this machine.
    """
    assert client_python().is_file(), f"official client venv {client_python()} missing: run `make deps`"
    sim_node.process_runner.provide_image_files(REGISTRY_IMAGE, {"/model-registry": registry_binary})
    port = host_free_port()
    cluster.apply_yaml(manifests(namespace, NAME, port, database), namespace)

    # -- Available through the real readiness probe ---------------------------------------
    available = cluster.wait_condition(namespace, NAME, "Available", "True", timeout=180)
    assert available["reason"] == "DeploymentAvailable"
    assert (cluster.condition(namespace, NAME, "DatabaseAvailable") or {}).get("status") == "True"
    deployment = cluster.get(DEPLOYMENT, namespace, NAME)
    assert deployment is not None
    assert (deployment["status"].get("availableReplicas"), deployment["status"].get("readyReplicas")) == (1, 1)
    assert condition(deployment, "Available")["status"] == "True"

    pod = registry_pod(cluster, namespace, NAME)
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "rest-container")
    assert (container["image"], container["command"]) == (REGISTRY_IMAGE, ["/model-registry", "proxy"])
    assert f"--port={port}" in container["args"]
    status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "rest-container")
    assert (status["ready"], status["started"], status["restartCount"]) == (True, True, 0), status
    # Ready no earlier than the rendered startup probe's initialDelaySeconds (10 s) allows.
    ready_at = seconds(condition(pod, "Ready")["lastTransitionTime"])
    assert ready_at - seconds(status["state"]["running"]["startedAt"]) >= 9, status

    pod_url = f"http://{pod['status']['podIP']}:{port}"
    health = requests.get(f"{pod_url}/readyz/health", timeout=10)
    assert health.status_code == 200, health.text
    listed = requests.get(f"{pod_url}{API}/registered_models", timeout=10)
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []

    # -- a ModelUploadJob registers a model in it ------------------------------------------
    files = model_files(big=1024 * 1024)
    s3_upload(s3, BUCKET, f"{namespace}/llm", files)
    base_image = oci.push_busybox_base()
    cluster.apply_yaml(upload_manifests(namespace, s3, oci, base_image), namespace)

    muj = wait_succeeded(cluster, namespace, "llm")["llm"]
    assert muj["registryURL"] == f"http://{NAME}.{namespace}.svc.cluster.local:{port}"
    assert muj["artifactURI"] == f"oci://{oci.host}/{namespace}/llm:v1"
    assert all(muj.get(k) for k in ("registeredModelId", "modelVersionId", "modelArtifactId")), muj
    assert muj["files"] == len(files)

    # -- what the registry holds: its REST API and the official client -----------------------
    model_name = f"{namespace}-llm"
    models = requests.get(f"{pod_url}{API}/registered_models", timeout=10).json()["items"]
    assert [(m["id"], m["name"]) for m in models] == [(muj["registeredModelId"], model_name)]
    artifact_rest = requests.get(f"{pod_url}{API}/model_artifacts/{muj['modelArtifactId']}", timeout=10)
    assert artifact_rest.status_code == 200, artifact_rest.text
    assert (artifact_rest.json()["uri"], artifact_rest.json()["state"]) == (muj["artifactURI"], "LIVE")

    by_name = isinstance(database, MariaDBServer)  # PostgreSQL: the pinned server's parent lookups fail
    ids = {"model": muj["registeredModelId"], "version": muj["modelVersionId"], "artifact": muj["modelArtifactId"]}
    read = official_client_read(pod_url, model_name, "v1", ids=None if by_name else ids)
    model, version, artifact = read["model"], read["version"], read["artifact"]
    assert (model["id"], model["name"], model["description"]) == (ids["model"], model_name, "the flagship model")
    assert (version["id"], version["name"], version["author"]) == (ids["version"], "v1", "alice")
    assert (artifact["id"], artifact["uri"], artifact["state"]) == (ids["artifact"], muj["artifactURI"], "LIVE")
    assert (artifact["model_format_name"], artifact["model_format_version"]) == ("onnx", "1")
    by_client = official_client_list(pod_url, model_name, versions=by_name)
    assert by_client == ({"models": [model_name], "versions": ["v1"]} if by_name else {"models": [model_name]})
    if by_name:
        artifacts = requests.get(f"{pod_url}{API}/model_versions/{ids['version']}/artifacts", timeout=10)
        assert [a["id"] for a in artifacts.json()["items"]] == [ids["artifact"]], artifacts.text

    # -- readiness is the server's own health: without its database it is no longer Available
    database.stop()
    cluster.wait_condition(namespace, NAME, "Available", "False", timeout=120)
    assert condition(registry_pod(cluster, namespace, NAME), "Ready")["status"] == "False"
