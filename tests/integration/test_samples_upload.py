"""The upload samples (``config/samples/upload``) run for real: every file applied as written, with
only what points outside this machine swapped for the local servers.

What is swapped, and nothing else:

* the S3 data connection's endpoint and keys (SeaweedFS; the bucket ``models`` is the sample's);
* the registry host of ``.dockerconfigjson`` and of ``quay.io/my-org/...`` (a local distribution
  registry with htpasswd, so the sample's push credentials are really used);
* ``https://github.com`` in the URI sources (nginx serving the same paths);
* the upload image and the modelcar base image (``job.image``, ``destination.oci.baseImage``:
  the default base lives on Docker Hub), ``enableTLSVerify: false`` (the local registry is
  plain HTTP) and ``backoffLimit: 0`` (a failure shows at once).

``modelregistry-sample`` is a ModelRegistry on MariaDB whose registry container the simulated
node runs as the real server. The samples name ids: ``create-version.yaml`` RegisteredModel
``"1"`` (the model ``s3-to-oci.yaml`` creates first) and ``update-artifact.yaml`` ModelArtifact
``"3"`` (the placeholder artifact registered after the two ``create_model`` samples, the way
an ML engineer prepares an ``update_artifact``); the test checks these ids are the ones the
registry gives, then reads everything back with the official client and pulls every modelcar.
"""

from __future__ import annotations

import base64
import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_registry_devcluster.simnode import SimulatedNode
from tests.backends.databases import MariaDBServer
from tests.backends.http import NginxServer
from tests.backends.models import placeholder_artifact, pull_model_layers, s3_upload, sha
from tests.backends.oci import PASSWORD, USER, DistributionRegistry
from tests.backends.registry_server import client_python, official_client_read
from tests.backends.s3 import ADMIN_KEY, ADMIN_SECRET, SeaweedS3

from .kube import Cluster
from .served_registry import REGISTRY_IMAGE, host_free_port, manifests, official_client_list, registry_pod
from .uploads import BUCKET, UPLOAD_IMAGE, wait_succeeded

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "config" / "samples" / "upload"
REGISTRY = "modelregistry-sample"
GITHUB = "https://github.com/"
SAMPLE_REGISTRY_PREFIX = "quay.io/my-org/"


@pytest.fixture(scope="module")
def oci_auth() -> Iterator[DistributionRegistry]:
    """A distribution registry that takes pushes only with htpasswd credentials."""
    with DistributionRegistry(auth=True) as server:
        yield server


@pytest.fixture(scope="module")
def nginx() -> Iterator[NginxServer]:
    with NginxServer() as server:
        yield server


@pytest.fixture
def mariadb() -> Iterator[MariaDBServer]:
    with MariaDBServer() as server:
        yield server


def sample(file: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((SAMPLES / file).read_text()) if doc]


class Local:
    """Rewrites sample documents to point at the local servers (see the module docstring)."""

    def __init__(
        self, namespace: str, s3: SeaweedS3, oci: DistributionRegistry, nginx: NginxServer, base_image: str
    ) -> None:
        self.namespace, self.s3, self.oci, self.nginx, self.base_image = namespace, s3, oci, nginx, base_image

    def image(self, sample_uri: str) -> str:
        assert sample_uri.startswith(SAMPLE_REGISTRY_PREFIX), sample_uri
        return f"{self.oci.host}/{self.namespace}/{sample_uri.removeprefix(SAMPLE_REGISTRY_PREFIX)}"

    def url(self, sample_url: str) -> str:
        assert sample_url.startswith(GITHUB), sample_url
        return f"{self.nginx.url}/{sample_url.removeprefix(GITHUB)}"

    def __call__(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        if doc["kind"] == "Secret" and doc.get("type") == "kubernetes.io/dockerconfigjson":
            auths = json.loads(doc["stringData"][".dockerconfigjson"])["auths"]
            assert list(auths) == ["quay.io"], auths
            auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            doc["stringData"][".dockerconfigjson"] = json.dumps({"auths": {self.oci.host: {"auth": auth}}})
        elif doc["kind"] == "Secret":
            data = doc["stringData"]
            assert data["AWS_S3_BUCKET"] == BUCKET, data
            data.update(
                AWS_S3_ENDPOINT=self.s3.endpoint, AWS_ACCESS_KEY_ID=ADMIN_KEY, AWS_SECRET_ACCESS_KEY=ADMIN_SECRET
            )
        else:
            assert doc["kind"] == "ModelUploadJob", doc["kind"]
            spec = doc["spec"]
            destination = spec["destination"]["oci"]
            destination.update(uri=self.image(destination["uri"]), baseImage=self.base_image, enableTLSVerify=False)
            if "uri" in spec["source"]:
                spec["source"]["uri"]["uri"] = self.url(spec["source"]["uri"]["uri"])
            spec["job"] = {**spec.get("job", {}), "image": UPLOAD_IMAGE, "backoffLimit": 0}
        return doc


def test_upload_samples_register_and_push_through_the_real_registry(
    cluster: Cluster,
    namespace: str,
    sim_node: SimulatedNode,
    registry_binary: Path,
    mariadb: MariaDBServer,
    s3: SeaweedS3,
    oci_auth: DistributionRegistry,
    nginx: NginxServer,
) -> None:
    assert client_python().is_file(), f"official client venv {client_python()} missing: run `make deps`"
    sim_node.process_runner.provide_image_files(REGISTRY_IMAGE, {"/model-registry": registry_binary})
    local = Local(namespace, s3, oci_auth, nginx, oci_auth.push_busybox_base())

    # What the samples read: s3://models/mnist/, s3://models/mnist-v2/ and two ONNX files over https.
    mnist = {"model.onnx": os.urandom(300 * 1024), "config/labels.json": b'{"0": "zero"}'}
    mnist_v2 = {"model.onnx": os.urandom(200 * 1024), "config/labels.json": b'{"0": "zero", "9": "nine"}'}
    s3_upload(s3, BUCKET, "mnist", mnist)
    s3_upload(s3, BUCKET, "mnist-v2", mnist_v2)
    onnx = {name: os.urandom(100 * 1024) for name in ("mnist-8.onnx", "mnist-12.onnx")}
    uploads = {
        doc["metadata"]["name"]: doc
        for f in ("s3-to-oci.yaml", "uri-to-oci.yaml", "create-version.yaml", "update-artifact.yaml")
        for doc in sample(f)
    }
    for name, data in onnx.items():
        url = next(
            d["spec"]["source"]["uri"]["uri"]
            for d in uploads.values()
            if d["spec"]["source"].get("uri", {}).get("uri", "").endswith("/" + name)
        )
        nginx.publish(url.removeprefix(GITHUB), data)

    # -- modelregistry-sample, served by the real server -------------------------------------
    cluster.apply_yaml(yaml.safe_dump_all([local(doc) for doc in sample("credentials.yaml")]), namespace)
    port = host_free_port()
    cluster.apply_yaml(manifests(namespace, REGISTRY, port, mariadb), namespace)
    cluster.wait_condition(namespace, REGISTRY, "Available", "True", timeout=180)
    pod_url = f"http://{registry_pod(cluster, namespace, REGISTRY)['status']['podIP']}:{port}"

    # -- the two create_model samples, one after the other: the first model gets id 1 --------
    statuses: dict[str, dict[str, Any]] = {}
    for name in ("mnist-s3-to-oci", "mnist-uri-to-oci"):
        cluster.apply_yaml(yaml.safe_dump(local(uploads[name])), namespace)
        statuses |= wait_succeeded(cluster, namespace, name)
    assert statuses["mnist-s3-to-oci"]["registeredModelId"] == "1"

    # -- the artifact update-artifact.yaml names, registered with a placeholder URI ------------
    assert placeholder_artifact(pod_url, "mnist-12") == "3"

    # -- create_version (of model 1) and update_artifact (artifact 3), together ----------------
    for name in ("mnist-v2", "mnist-artifact-3"):
        cluster.apply_yaml(yaml.safe_dump(local(uploads[name])), namespace)
    statuses |= wait_succeeded(cluster, namespace, "mnist-v2", "mnist-artifact-3")
    assert statuses["mnist-v2"]["registeredModelId"] == "1"
    assert statuses["mnist-artifact-3"]["modelArtifactId"] == "3"

    # -- every modelcar holds the source's bytes ----------------------------------------------
    expected = {
        "mnist-s3-to-oci": ("mnist:v1", mnist),
        "mnist-uri-to-oci": ("mnist-8:v1", {"mnist-8.onnx": onnx["mnist-8.onnx"]}),
        "mnist-v2": ("mnist:v2", mnist_v2),
        "mnist-artifact-3": ("mnist-12:v1", {"mnist-12.onnx": onnx["mnist-12.onnx"]}),
    }
    for name, (ref, files) in expected.items():
        repo, _, tag = f"{namespace}/{ref}".partition(":")
        assert statuses[name]["artifactURI"] == f"oci://{oci_auth.host}/{repo}:{tag}"
        got, _, _ = pull_model_layers(oci_auth, repo, tag)
        assert got == {rel: sha(data) for rel, data in files.items()}, name

    # -- what the registry holds, read by the official client ---------------------------------
    read = official_client_read(pod_url, "mnist", "v1")
    model, version, artifact = read["model"], read["version"], read["artifact"]
    assert (model["id"], model["description"], model["owner"]) == ("1", "Handwritten digits", "data-science")
    assert model["custom_properties"] == {"team": "vision"}
    assert (version["id"], version["author"]) == (statuses["mnist-s3-to-oci"]["modelVersionId"], "alice")
    assert (artifact["uri"], artifact["state"]) == (statuses["mnist-s3-to-oci"]["artifactURI"], "LIVE")
    assert (artifact["model_format_name"], artifact["model_format_version"]) == ("onnx", "1")

    read = official_client_read(pod_url, "mnist", "v2")
    assert (read["version"]["id"], read["version"]["description"]) == (
        statuses["mnist-v2"]["modelVersionId"],
        "Retrained",
    )
    assert (read["artifact"]["uri"], read["artifact"]["state"]) == (statuses["mnist-v2"]["artifactURI"], "LIVE")

    read = official_client_read(pod_url, "mnist-8", "v1")
    assert (read["artifact"]["uri"], read["artifact"]["state"]) == (statuses["mnist-uri-to-oci"]["artifactURI"], "LIVE")
    assert (read["artifact"]["model_format_name"], read["artifact"]["model_format_version"]) == ("onnx", "8")

    read = official_client_read(pod_url, "mnist-12", "v1")
    assert (read["artifact"]["id"], read["artifact"]["state"]) == ("3", "LIVE")
    assert read["artifact"]["uri"] == statuses["mnist-artifact-3"]["artifactURI"]

    assert official_client_list(pod_url, "mnist", versions=True) == {
        "models": ["mnist", "mnist-12", "mnist-8"],
        "versions": ["v1", "v2"],
    }
