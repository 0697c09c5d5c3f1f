"""ModelUploadJob end to end: the operator's Job runs the real upload program on the simulated node.

The Job's image contains ``sim-exec``, so the simulated node runs its command
(``model-registry-upload``) as a local process with the Pod's env, Secrets and
ConfigMap mounted (model_registry_devcluster/process_runner.py). The program copies a model from SeaweedFS S3
to a distribution registry and registers it in the real model registry server (on MariaDB, see
tests/backends/registry_server.py); what the registry holds is read back over its REST API and
with the official client.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from model_registry_devcluster.process_runner import HOST_PATH_ANNOTATION
from model_registry_devcluster.simnode import SimulatedNode
from model_registry_operator.api.modeluploadjob import ModelUploadJobSpec
from model_registry_operator.kube import lookup
from model_registry_operator.render.modeluploadjob import RegistryEndpoint, UploadJobRef, render_model_upload_job
from model_registry_upload_contract import UPLOADED_LAYERS
from tests.backends.faults import Fault, FaultProxy
from tests.backends.models import (
    model_files,
    placeholder_artifact,
    pull_model_layers,
    s3_bucket,
    s3_keys,
    s3_upload,
    sha,
    write_dir,
)
from tests.backends.oci import DistributionRegistry
from tests.backends.process import LOOPBACK
from tests.backends.registry_server import API, RealRegistryServer, official_client_read, registry_server
from tests.backends.s3 import ADMIN_SECRET, SeaweedS3
from tests.unit.upload_cases import DESTINATIONS, ENDPOINT, INTENTS, SOURCES, spec_raw

from .kube import Cluster, wait_for
from .uploads import BUCKET, MUJ, UPLOAD_IMAGE, s3_to_oci_spec, secrets, upload, upload_status

pytestmark = pytest.mark.integration

JOB = lookup("batch/v1", "Job")
POD = lookup("v1", "Pod")
CONFIG_MAP = lookup("v1", "ConfigMap")
ROLE = lookup("rbac.authorization.k8s.io/v1", "Role")
ROLE_BINDING = lookup("rbac.authorization.k8s.io/v1", "RoleBinding")
EVENT = lookup("v1", "Event")
SAMPLES = Path(__file__).resolve().parents[2] / "config" / "samples"


@pytest.fixture(scope="module")
def mr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRegistryServer]:
    with registry_server(tmp_path_factory.mktemp("model-registry")) as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def _crds(cluster: Cluster) -> None:
    cluster.wait_established("crd/modeluploadjobs.modelregistry.opendatahub.io")


def s3_to_oci(
    mr: RealRegistryServer, oci: DistributionRegistry, base_image: str, key: str, repo: str, **extra: Any
) -> dict[str, Any]:
    registry = {"address": f"http://{LOOPBACK}", "port": mr.port, "isSecure": False, "author": "operator-tests"}
    registered_model = {
        "name": repo.replace("/", "-"),
        "description": "from the operator",
        "customProperties": {"team": "a", "size": 7},
    }
    spec = s3_to_oci_spec(registry, oci.host, base_image, key, repo, registered_model)
    spec.update(extra)
    return spec


def wait_phase(cluster: Cluster, namespace: str, name: str, phase: str, timeout: float = 120) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status = upload_status(cluster, namespace, name)
        return status if status.get("phase") == phase else None

    try:
        return wait_for(check, timeout, interval=0.3, what=f"phase {phase} of {namespace}/{name}")
    except AssertionError as exc:
        status = upload_status(cluster, namespace, name)
        raise AssertionError(f"{exc}\nstatus: {json.dumps(status, indent=1)}") from None


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_s3_to_oci_create_model_pending_then_succeeded(
    cluster: Cluster,
    namespace: str,
    sim_node: SimulatedNode,
    s3: SeaweedS3,
    oci: DistributionRegistry,
    base_image: str,
    mr: RealRegistryServer,
) -> None:
    files = model_files(big=1024 * 1024)
    s3_upload(s3, BUCKET, f"{namespace}/llm", files)
    # Created before its Secrets: Pending with the reason, then retried once they exist.
    cluster.apply_yaml(upload("llm", s3_to_oci(mr, oci, base_image, f"{namespace}/llm", f"{namespace}/llm")), namespace)
    wait_phase(cluster, namespace, "llm", "Pending")
    wait_for(
        lambda: "not found" in (upload_status(cluster, namespace, "llm").get("message") or ""),
        what="missing Secret reported",
    )
    pending = upload_status(cluster, namespace, "llm")
    assert "s3-credentials" in pending["message"]
    assert condition(pending, "Started")["reason"] == "ConfigurationError"
    assert cluster.get(JOB, namespace, "llm-upload") is None

    cluster.apply_yaml(secrets(namespace, s3.endpoint, oci.host), namespace)
    status = wait_phase(cluster, namespace, "llm", "Succeeded", timeout=180)

    assert status["artifactURI"] == f"oci://{oci.host}/{namespace}/llm:v1"
    assert all(status.get(k) for k in ("registeredModelId", "modelVersionId", "modelArtifactId")), status
    assert status["files"] == len(files)
    assert status["bytes"] == sum(len(d) for d in files.values())
    assert status["digest"].startswith("sha256:")
    assert status["startTime"] <= status["completionTime"]
    assert status["registryURL"] == mr.url
    assert (status["jobName"], status["configMapName"]) == ("llm-upload", "llm-metadata")
    assert condition(status, "Complete")["status"] == "True"
    assert condition(status, "Failed")["status"] == "False"
    assert condition(status, "Started")["status"] == "True"
    assert condition(status, "SpecChanged")["status"] == "False"

    # What the registry holds (read back by name with the official client), and the pushed image.
    back = official_client_read(mr.url, f"{namespace}-llm", "v1")
    model, version, artifact = back["model"], back["version"], back["artifact"]
    assert (model["id"], version["id"], artifact["id"]) == (
        status["registeredModelId"],
        status["modelVersionId"],
        status["modelArtifactId"],
    )
    assert model["description"] == "from the operator"
    assert model["custom_properties"] == {"team": "a", "size": 7}  # typed; the upload-incomplete marker is gone
    assert (version["name"], version["author"]) == ("v1", "alice")
    assert artifact["uri"] == status["artifactURI"]
    assert artifact["state"] == "LIVE"
    assert (artifact["model_format_name"], artifact["model_format_version"]) == ("onnx", "1")
    assert (artifact["model_source_group"], artifact["model_source_name"]) == (namespace, "llm")
    manifest, digest = oci.get_manifest(f"{namespace}/llm", "v1")
    assert digest == status["digest"]
    assert len(manifest["layers"]) >= 2

    # The Job as rendered: the upload image (its entrypoint runs the program), owner reference,
    # no secret value in it.
    job = cluster.get(JOB, namespace, "llm-upload")
    assert job is not None
    muj = cluster.get(MUJ, namespace, "llm")
    assert muj is not None
    assert [o["uid"] for o in job["metadata"]["ownerReferences"]] == [muj["metadata"]["uid"]]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container.get("command")) == (UPLOAD_IMAGE, None)
    assert ADMIN_SECRET not in json.dumps(job)
    managers = {m["manager"] for m in job["metadata"]["managedFields"] if m["operation"] == "Apply"}
    assert managers == {"model-registry-operator"}
    events = {e["reason"] for e in cluster.list(EVENT, namespace) if e["involvedObject"]["name"] == "llm"}
    assert {"JobCreated", "Succeeded"} <= events

    # Progress: the Pod itself wrote status.progress (its service account token, the Role the
    # operator made), and the operator completed it.
    progress = status["progress"]
    assert progress["stage"] == "Completed"
    assert progress["bytesTransferred"] == progress["bytesTotal"] == status["bytes"]
    assert progress["percent"] == 100
    assert progress["updateTime"] >= status["startTime"]
    status_writers = {m["manager"] for m in muj["metadata"]["managedFields"] if m.get("subresource") == "status"}
    assert "model-upload" in status_writers
    assert cluster.get(ROLE, namespace, "llm-upload-progress") is not None


def test_missing_source_fails_with_the_reason(
    cluster: Cluster,
    namespace: str,
    sim_node: SimulatedNode,
    s3: SeaweedS3,
    oci: DistributionRegistry,
    base_image: str,
    mr: RealRegistryServer,
) -> None:
    cluster.apply_yaml(secrets(namespace, s3.endpoint, oci.host), namespace)
    cluster.apply_yaml(
        upload("gone", s3_to_oci(mr, oci, base_image, f"{namespace}/nothing-here", f"{namespace}/g")), namespace
    )
    status = wait_phase(cluster, namespace, "gone", "Failed", timeout=180)
    failed = condition(status, "Failed")
    assert failed["status"] == "True"
    assert failed["reason"] == "TransferFailed"
    assert "exit code 1" in status["message"]
    assert "NoSuchKey" in status["message"], status["message"]
    assert condition(status, "Complete")["status"] == "False"
    assert status["completionTime"]
    assert "registeredModelId" not in status


def test_spec_is_immutable_and_deletion_removes_children(
    cluster: Cluster,
    namespace: str,
    sim_node: SimulatedNode,
    mr: RealRegistryServer,
    oci: DistributionRegistry,
    base_image: str,
) -> None:
    # A plain image: the simulated container just exits 0, enough to follow the Job.
    spec = s3_to_oci(mr, oci, base_image, "k", "r/x")
    spec["job"] = {"image": "example.com/upload:v1", "backoffLimit": 0}
    cluster.apply_yaml(secrets(namespace, "http://127.0.0.1:9", oci.host), namespace)
    cluster.apply_yaml(upload("once", spec), namespace)
    wait_phase(cluster, namespace, "once", "Succeeded")

    result = cluster.kubectl(
        "patch",
        "-n",
        namespace,
        "modeluploadjob",
        "once",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"intent": "update_artifact"}}),
        check=False,
    )
    assert result.returncode != 0
    assert "spec is immutable" in result.stderr

    job = cluster.get(JOB, namespace, "once-upload")
    assert job is not None
    assert cluster.get(CONFIG_MAP, namespace, "once-metadata") is not None
    assert cluster.get(ROLE_BINDING, namespace, "once-upload-progress") is not None
    assert cluster.list(POD, namespace, "batch.kubernetes.io/job-name=once-upload")
    cluster.delete(MUJ, namespace, "once")
    wait_for(lambda: cluster.get(JOB, namespace, "once-upload") is None, what="Job garbage-collected")
    wait_for(lambda: cluster.get(CONFIG_MAP, namespace, "once-metadata") is None, what="ConfigMap garbage-collected")
    wait_for(
        lambda: all(cluster.get(k, namespace, "once-upload-progress") is None for k in (ROLE, ROLE_BINDING)),
        what="progress Role and RoleBinding garbage-collected",
    )
    wait_for(
        lambda: not cluster.list(POD, namespace, "batch.kubernetes.io/job-name=once-upload"),
        what="Pods garbage-collected",
    )


def test_registry_by_name_waits_until_available(
    cluster: Cluster,
    namespace: str,
    sim_node: SimulatedNode,
    oci: DistributionRegistry,
    base_image: str,
    mr: RealRegistryServer,
) -> None:
    spec = s3_to_oci(mr, oci, base_image, "k", "r/y")
    spec["registry"] = {"name": "reg"}
    spec["job"] = {"image": "example.com/upload:v1", "backoffLimit": 0}
    cluster.apply_yaml(secrets(namespace, "http://127.0.0.1:9", oci.host), namespace)
    cluster.apply_yaml(upload("named", spec), namespace)
    wait_for(
        lambda: (
            condition(upload_status(cluster, namespace, "named"), "RegistryResolved")["reason"] == "RegistryNotFound"
            if upload_status(cluster, namespace, "named").get("conditions")
            else None
        ),
        what="RegistryNotFound",
    )
    assert upload_status(cluster, namespace, "named")["phase"] == "Pending"

    registry = {
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": "reg"},
        "spec": {"rest": {"port": 8181}, "postgres": {"generateDeployment": True}},
    }
    cluster.apply_yaml(yaml.safe_dump(registry), namespace)
    status = wait_phase(cluster, namespace, "named", "Succeeded", timeout=120)
    assert status["registryURL"] == f"http://reg.{namespace}.svc.cluster.local:8181"
    assert condition(status, "RegistryResolved")["status"] == "True"
    job = cluster.get(JOB, namespace, "named-upload")
    assert job is not None
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODEL_SYNC_REGISTRY_SERVER_ADDRESS"] == f"http://reg.{namespace}.svc.cluster.local"
    assert (env["MODEL_SYNC_REGISTRY_PORT"], env["MODEL_SYNC_REGISTRY_IS_SECURE"]) == ("8181", "false")


def test_upload_samples_run_once_the_sample_registry_is_available(
    cluster: Cluster, namespace: str, sim_node: SimulatedNode
) -> None:
    """The samples apply as they are; their Jobs (plain simulated containers) run once the registry is up."""
    cluster.kubectl("apply", "-n", namespace, "-k", str(SAMPLES / "upload"))
    names = ["mnist-s3-to-oci", "mnist-uri-to-oci", "mnist-v2", "mnist-artifact-3"]
    for name in names:
        wait_phase(cluster, namespace, name, "Pending")
    cluster.kubectl("apply", "-n", namespace, "-k", str(SAMPLES / "postgres-auto"))
    for name in names:
        status = wait_phase(cluster, namespace, name, "Succeeded")
        assert status["registryURL"] == f"http://modelregistry-sample.{namespace}.svc.cluster.local:8080"
    table = cluster.kubectl("get", "-n", namespace, "modeluploadjobs").stdout
    assert table.split("\n")[0].split() == ["NAME", "PHASE", "MODEL", "VERSION", "AGE"]
    row = next(line.split() for line in table.splitlines() if line.startswith("mnist-s3-to-oci "))
    assert row[:4] == ["mnist-s3-to-oci", "Succeeded", "mnist", "v1"]


def test_every_rendered_upload_object_is_accepted_by_the_api_server(cluster: Cluster, namespace: str) -> None:
    """Server-side dry-run apply with strict field validation, every source x destination x intent."""
    objects = []
    for i, (source, destination, intent) in enumerate(itertools.product(SOURCES, DESTINATIONS, INTENTS)):
        raw = spec_raw(
            source,
            destination,
            intent,
            job={
                "scratchSize": "1Gi",
                "activeDeadlineSeconds": 60,
                "ttlSecondsAfterFinished": 5,
                "serviceAccountName": "default",
                "resources": {"requests": {"cpu": "1"}},
            },
        )
        spec = ModelUploadJobSpec.model_validate(raw)
        ref = UploadJobRef(f"u{i}", namespace, "00000000-0000-0000-0000-000000000000")
        objects += render_model_upload_job(ref, spec, raw, ENDPOINT, UPLOAD_IMAGE)

    assert len(objects) == 4 * len(SOURCES) * len(DESTINATIONS) * len(INTENTS)  # ConfigMap, Role, RoleBinding, Job
    # The operator's own ServiceAccount, the Secret of credential URLs, an Istio registry's mesh
    # sidecar, a 63-character name, the defaults of resources: {}, with and without fsGroup.
    creds = "user:pa$$(word)@"
    raw = spec_raw("uri", "s3", "create_model", job={"resources": {}, "scratchSize": 1073741824})
    raw["source"] = {"uri": {"uri": f"https://{creds}files.example.com/m.tar"}}
    raw["destination"] = {"s3": {**DESTINATIONS["s3"]["s3"], "endpoint": f"http://{creds}s3.local:9000"}}
    raw["registry"] = {"name": "mr", "author": "$(MODEL_SYNC_REGISTRY_USER_TOKEN)"}
    spec = ModelUploadJobSpec.model_validate(raw)
    mesh = RegistryEndpoint("http://mr.ns.svc.cluster.local", 8080, True, "mesh")
    for i, openshift in enumerate((False, True)):
        ref = UploadJobRef(f"{'x' * 61}-{i}", namespace, "00000000-0000-0000-0000-000000000000")
        extra = render_model_upload_job(ref, spec, raw, mesh, UPLOAD_IMAGE, openshift=openshift)
        assert [o["kind"] for o in extra] == ["ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding", "Job"]
        objects += extra

    failures = cluster.rejected_by_dry_run(objects)
    assert not failures, "\n".join(failures)


def test_pvc_to_s3_update_artifact(
    cluster: Cluster,
    namespace: str,
    sim_node: SimulatedNode,
    s3: SeaweedS3,
    mr: RealRegistryServer,
    tmp_path: Path,
) -> None:
    """A PVC (a host directory for the simulated node) to S3, for an artifact registered beforehand."""
    files = model_files(big=256 * 1024)
    write_dir(tmp_path / "volume" / "llm", files)
    s3_bucket(s3, "out")
    model = requests.post(f"{mr.url}{API}/registered_models", json={"name": f"{namespace}-pvc"}, timeout=10).json()
    version = requests.post(
        f"{mr.url}{API}/model_versions", json={"name": "v1", "registeredModelId": model["id"]}, timeout=10
    ).json()
    artifact = requests.post(
        f"{mr.url}{API}/model_versions/{version['id']}/artifacts",
        json={"artifactType": "model-artifact", "name": "pvc", "uri": "PLACEHOLDER"},
        timeout=10,
    ).json()
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "models", "annotations": {HOST_PATH_ANNOTATION: str(tmp_path / "volume")}},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    cluster.apply_yaml(yaml.safe_dump(pvc), namespace)
    cluster.apply_yaml(secrets(namespace, s3.endpoint, "registry.invalid"), namespace)
    spec = {
        "registry": {"address": mr.url, "isSecure": False},
        "intent": "update_artifact",
        "source": {"pvc": {"claimName": "models", "path": "llm"}},
        "destination": {"s3": {"bucket": "out", "key": f"{namespace}/llm", "credentialsSecret": "s3-credentials"}},
        "model": {"modelArtifact": {"id": artifact["id"]}, "modelVersion": {"id": version["id"]}},
        "job": {"image": UPLOAD_IMAGE, "backoffLimit": 0},
    }
    cluster.apply_yaml(upload("from-pvc", spec), namespace)
    status = wait_phase(cluster, namespace, "from-pvc", "Succeeded", timeout=180)
    assert (status["modelArtifactId"], status["modelVersionId"]) == (artifact["id"], version["id"])
    assert status["artifactURI"].startswith(f"s3://out/{namespace}/llm?endpoint=")
    got = requests.get(f"{mr.url}{API}/model_artifacts/{artifact['id']}", timeout=10).json()
    assert (got["state"], got["uri"]) == ("LIVE", status["artifactURI"])
    listed = s3_keys(s3, "out", f"{namespace}/llm/")
    assert listed == {f"{namespace}/llm/{rel}" for rel in files}


def test_image_pull_failure_waits_with_the_reason_then_hits_the_deadline(
    cluster: Cluster,
    namespace: str,
    sim_node: SimulatedNode,
    mr: RealRegistryServer,
    oci: DistributionRegistry,
    base_image: str,
) -> None:
    spec = s3_to_oci(mr, oci, base_image, "k", "r/z")
    spec["job"] = {"image": "example.com/sim-imagepull:1", "backoffLimit": 0, "activeDeadlineSeconds": 8}
    cluster.apply_yaml(secrets(namespace, "http://127.0.0.1:9", oci.host), namespace)
    cluster.apply_yaml(upload("pull", spec), namespace)

    def pulling() -> dict[str, Any] | None:
        status = upload_status(cluster, namespace, "pull")
        started = next((c for c in status.get("conditions") or [] if c["type"] == "Started"), None)
        return status if started and started["reason"] in ("ErrImagePull", "ImagePullBackOff") else None

    status = wait_for(pulling, 60, what="image pull failure reported")
    assert status["phase"] == "Pending"
    assert "sim-imagepull" in status["message"]
    status = wait_phase(cluster, namespace, "pull", "Failed", timeout=90)
    assert condition(status, "Failed")["reason"] == "DeadlineExceeded"


def _upload_processes(namespace: str, name: str) -> list[int]:
    """PIDs of the processes the simulated node runs for ModelUploadJob ``namespace/name``."""
    marks = (f"MODEL_UPLOAD_JOB_NAME={name}".encode(), f"MODEL_UPLOAD_JOB_NAMESPACE={namespace}".encode())
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(mark in env for mark in marks):
            pids.append(int(proc.name))
    return pids


def test_a_killed_upload_is_reported_and_its_retry_does_not_read_the_pushed_files_again(
    cluster: Cluster,
    namespace: str,
    sim_node: SimulatedNode,
    s3: SeaweedS3,
    oci: DistributionRegistry,
    base_image: str,
    mr: RealRegistryServer,
) -> None:
    """The upload process is killed (SIGKILL, as the OOM killer or a node would) while one file is
    still on its way, after two others were pushed: the status says which attempt failed and how
    (exit code 137 and the log tail, no termination message), the Job's retry finishes the upload,
    and it neither reads nor pushes again the two files the killed attempt had pushed."""
    files = {"a.bin": os.urandom(256 * 1024), "b.bin": os.urandom(256 * 1024), "c/c.bin": os.urandom(256 * 1024)}
    prefix = f"{namespace}/killed"
    s3_upload(s3, BUCKET, prefix, files)
    artifact = placeholder_artifact(mr.url, f"{namespace}-killed")
    with FaultProxy(s3.port) as proxy:
        # c/c.bin's answer never comes: the first attempt hangs on it
        proxy.add(Fault("stall", match=lambda r: r.method == "GET" and r.path.endswith("/c/c.bin"), seconds=120))
        cluster.apply_yaml(secrets(namespace, proxy.url, oci.host), namespace)
        spec = s3_to_oci(mr, oci, base_image, prefix, f"{namespace}/killed")
        spec.update(intent="update_artifact", model={"modelArtifact": {"id": artifact}})
        spec["job"] = {"image": UPLOAD_IMAGE, "backoffLimit": 1}
        cluster.apply_yaml(upload("killed", spec), namespace)

        def journal() -> list[Any]:
            props = (
                requests.get(f"{mr.url}{API}/model_artifacts/{artifact}", timeout=10).json().get("customProperties")
                or {}
            )
            return list(json.loads(props.get(UPLOADED_LAYERS, {}).get("string_value") or "[]"))

        wait_for(lambda: len(journal()) == 2, 90, interval=0.3, what="a.bin and b.bin pushed, c/c.bin stalled")
        pids = _upload_processes(namespace, "killed")
        assert pids, "the upload process was not found"
        proxy.reset()  # the retry reads c/c.bin normally
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

        def retrying() -> dict[str, Any] | None:
            status = upload_status(cluster, namespace, "killed")
            started = next((c for c in status.get("conditions") or [] if c["type"] == "Started"), {})
            return status if started.get("reason") == "Retrying" else None

        status = wait_for(retrying, 60, interval=0.2, what="the killed attempt reported")
        assert status["phase"] == "Running"
        assert status["message"].startswith("attempt 1 failed: exit code 137"), status["message"]
        # no termination message: the runtime's is the log tail, and the status keeps its newest lines
        (first_log,) = sim_node.process_runner.log_dir.glob(f"{namespace}_killed-upload-*_upload_0.log")
        last_line = " ".join(first_log.read_text().strip().splitlines()[-1].split())
        assert status["message"].endswith(last_line), (status["message"], last_line)
        status = wait_phase(cluster, namespace, "killed", "Succeeded", timeout=120)
        # what the retry read of the objects (the one-byte read is the access check made before any transfer)
        read_by_retry = {
            r.path.rpartition(prefix)[2]
            for r in proxy.requests
            if r.method == "GET"
            and prefix in r.path
            and "list-type" not in r.path
            and r.headers.get("range") != "bytes=0-0"
        }

    assert read_by_retry == {"/c/c.bin"}  # a.bin and b.bin were not read again
    assert status["modelArtifactId"] == artifact
    got = requests.get(f"{mr.url}{API}/model_artifacts/{artifact}", timeout=10).json()
    assert (got["state"], got["uri"]) == ("LIVE", status["artifactURI"])
    assert UPLOADED_LAYERS not in (got.get("customProperties") or {})
    pulled, _, _ = pull_model_layers(oci, f"{namespace}/killed", "v1")
    assert pulled == {rel: sha(data) for rel, data in files.items()}


# -------------------------------------------------------------------- security and bad input


def _rejected(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]) -> str:
    result = cluster.apply_yaml(upload(name, spec), namespace, check=False)
    assert result.returncode != 0, f"{name} was accepted"
    return result.stderr


def test_the_api_server_rejects_bad_upload_specs(
    cluster: Cluster, namespace: str, mr: RealRegistryServer, oci: DistributionRegistry, base_image: str
) -> None:
    """The real API server's CRD validation, for the examples of the issue: ``scratchSize: lots``,
    a name past 63 characters, ``quay.io/x:🚀`` as job or base image, a token for a plain http://
    address without ``allowTokenOverHTTP``; each message names the field. A 63-character name is
    accepted and its Job, Pods' labels and ServiceAccount are created."""
    spec = s3_to_oci(mr, oci, base_image, "k", "r/bad")
    lots = {**spec, "job": {**spec["job"], "scratchSize": "lots"}}
    assert "spec.job.scratchSize" in _rejected(cluster, namespace, "lots", lots)
    rocket = {**spec, "job": {**spec["job"], "image": "quay.io/x:🚀"}}
    assert "spec.job.image" in _rejected(cluster, namespace, "rocket", rocket)
    base = {**spec, "destination": {"oci": {**spec["destination"]["oci"], "baseImage": "quay.io/x:🚀"}}}
    assert "spec.destination.oci.baseImage" in _rejected(cluster, namespace, "rocket-base", base)
    token = {**spec, "registry": {**spec["registry"], "tokenSecret": {"name": "t", "key": "token"}}}
    message = _rejected(cluster, namespace, "token-http", token)
    assert "spec.registry.address" in message
    assert "allowTokenOverHTTP" in message
    long_name = "a" * 64
    assert "metadata.name" in _rejected(cluster, namespace, long_name, spec)
    dotted = _rejected(cluster, namespace, "with.dot", spec)
    assert "RFC 1123 label" in dotted

    name = "a" * 46 + "-" + "b" * 16  # 63 characters
    plain = {**spec, "job": {"image": "example.com/upload:v1", "backoffLimit": 0}}
    cluster.apply_yaml(secrets(namespace, "http://127.0.0.1:9", oci.host), namespace)
    cluster.apply_yaml(upload(name, plain), namespace)
    allowed = {**token, "registry": {**token["registry"], "allowTokenOverHTTP": True}, "job": plain["job"]}
    docs = [*secret_doc("t", namespace, {"token": "unused"}), yaml.safe_load(upload("opt-out", allowed))]
    cluster.apply_yaml(yaml.safe_dump_all(docs), namespace)

    def job_of(muj: str) -> dict[str, Any] | None:
        status = upload_status(cluster, namespace, muj)
        return cluster.get(JOB, namespace, status["jobName"]) if status.get("jobName") else None

    job = wait_for(lambda: job_of(name), what="the Job of the 63-character upload")
    assert len(job["metadata"]["name"]) <= 63
    pod_spec = job["spec"]["template"]["spec"]
    account = cluster.get(lookup("v1", "ServiceAccount"), namespace, pod_spec["serviceAccountName"])
    assert account is not None
    binding = next(
        b
        for b in cluster.list(ROLE_BINDING, namespace)
        if b["metadata"]["labels"].get("modelregistry.opendatahub.io/upload-job") == name
    )
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": namespace}
    ]
    pods = wait_for(
        lambda: cluster.list(POD, namespace, f"batch.kubernetes.io/job-name={job['metadata']['name']}"), what="its Pod"
    )
    assert pods[0]["metadata"]["labels"]["modelregistry.opendatahub.io/upload-job"] == name
    opt_out = wait_for(lambda: job_of("opt-out"), what="the Job of the upload that opted out")
    env = {e["name"]: e.get("value") for e in opt_out["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODEL_SYNC_REGISTRY_TOKEN_OVER_HTTP"] == "allow"


def secret_doc(name: str, namespace: str, data: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}, "stringData": data}
    ]


URL_PASSWORD = "url-pass-Zq81x"  # noqa: S105 - test value


def test_url_credentials_stay_out_of_the_pod_spec_logs_and_status(
    cluster: Cluster,
    namespace: str,
    sim_node: SimulatedNode,
    s3: SeaweedS3,
    oci: DistributionRegistry,
    base_image: str,
    mr: RealRegistryServer,
) -> None:
    """``user:password@`` in the spec's S3 endpoint and registry address: the real upload program
    succeeds with them, the Job reads them from the Secret ``<name>-upload-urls`` (secretKeyRef),
    and the password is in no Job, Pod or status; a failing upload (the registry address pointing
    at a closed port) reports the URL masked."""
    files = {"w.bin": os.urandom(2048)}
    s3_upload(s3, BUCKET, f"{namespace}/creds", files)
    cluster.apply_yaml(secrets(namespace, s3.endpoint, oci.host), namespace)
    userinfo = f"url-user:{URL_PASSWORD}@"
    spec = s3_to_oci(mr, oci, base_image, f"{namespace}/creds", f"{namespace}/creds")
    spec["registry"]["address"] = f"http://{userinfo}{LOOPBACK}"
    spec["source"]["s3"]["endpoint"] = s3.endpoint.replace("://", f"://{userinfo}")
    failing = {**spec, "registry": {**spec["registry"], "port": 9}}
    cluster.apply_yaml(upload("creds", spec), namespace)
    cluster.apply_yaml(upload("creds-fail", failing), namespace)
    ok = wait_phase(cluster, namespace, "creds", "Succeeded", timeout=180)
    bad = wait_phase(cluster, namespace, "creds-fail", "Failed", timeout=180)
    assert ok["registryURL"] == f"http://***@{LOOPBACK}:{mr.port}"
    assert f"http://***@{LOOPBACK}:9" in bad["message"], bad["message"]
    assert condition(bad, "Failed")["reason"] == "RegistryError"

    secret = cluster.get(lookup("v1", "Secret"), namespace, "creds-upload-urls")
    assert secret is not None
    assert set(secret["data"]) == {"MODEL_SYNC_REGISTRY_SERVER_ADDRESS", "MODEL_SYNC_SOURCE_AWS_ENDPOINT"}
    job = cluster.get(JOB, namespace, "creds-upload")
    assert job is not None
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e}
    assert refs == dict.fromkeys(secret["data"], "creds-upload-urls")
    for name in ("creds", "creds-fail"):
        muj = cluster.get(MUJ, namespace, name)
        assert muj is not None
        assert URL_PASSWORD not in json.dumps(muj.get("status"))
        for obj in (
            cluster.get(JOB, namespace, f"{name}-upload"),
            *cluster.list(POD, namespace, f"batch.kubernetes.io/job-name={name}-upload"),
        ):
            assert URL_PASSWORD not in json.dumps(obj), obj["metadata"]["name"] if obj else name
    events = [e.get("message", "") for e in cluster.list(EVENT, namespace)]
    assert not [m for m in events if URL_PASSWORD in m]
