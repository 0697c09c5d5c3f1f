"""ModelUploadJob: the CRD, rendering for every source x destination x intent, and the status reducer."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from pydantic import ValidationError

from model_registry_operator.api.crd import model_upload_job_crd
from model_registry_operator.api.modeluploadjob import ModelUploadJobSpec
from model_registry_operator.reconcile.modeluploadjob import referenced_objects, registry_url
from model_registry_operator.render.modeluploadjob import (
    NAME_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    RegistryEndpoint,
    UploadJobRef,
    child_name,
    registry_endpoint,
    render_model_upload_job,
    spec_hash,
)
from model_registry_operator.render.offline import render_documents
from model_registry_operator.status.conditions import FALSE, TRUE
from model_registry_operator.status.modeluploadjob import (
    CONFIGURATION_ERROR,
    DEADLINE_EXCEEDED,
    REGISTRY_NOT_FOUND,
    Problem,
    UploadObservation,
    UploadStatus,
    upload_status,
)
from model_registry_operator.upload.config import load_config

from .upload_cases import DESTINATIONS, ENDPOINT, INTENTS, SOURCES, spec_raw

REF = UploadJobRef("up", "ns1", "uid-1")


def render(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = ModelUploadJobSpec.model_validate(raw)
    objects = render_model_upload_job(REF, spec, raw, ENDPOINT, "quay.io/x/operator:1")
    assert [o["kind"] for o in objects] == ["ConfigMap", "Role", "RoleBinding", "Job"]
    return objects[0], objects[-1]


def test_the_upload_pod_may_write_only_its_own_progress() -> None:
    for options, account in (({}, "default"), ({"job": {"serviceAccountName": "uploader"}}, "uploader")):
        raw = spec_raw("s3", "oci", "create_model", **options)
        _, role, binding, job = render_model_upload_job(
            REF, ModelUploadJobSpec.model_validate(raw), raw, ENDPOINT, "quay.io/x/operator:1"
        )
        assert role["metadata"]["name"] == binding["metadata"]["name"] == "up-upload-progress"
        assert role["rules"] == [{"apiGroups": ["modelregistry.opendatahub.io"],
                                  "resources": ["modeluploadjobs/status"], "resourceNames": ["up"],
                                  "verbs": ["get", "patch"]}]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": "up-upload-progress"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "ns1"}]
        for obj in (role, binding):
            assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        env = env_of(job)
        assert (env["MODEL_UPLOAD_JOB_NAME"], env["MODEL_UPLOAD_JOB_NAMESPACE"]) == ("up", "ns1")


def env_of(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize(("source", "destination", "intent"),
                         list(itertools.product(SOURCES, DESTINATIONS, INTENTS)))
def test_render_every_combination(source: str, destination: str, intent: str) -> None:
    cm, job = render(spec_raw(source, destination, intent))
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "up-metadata")
    assert (job["kind"], job["metadata"]["name"]) == ("Job", "up-upload")
    for obj in (cm, job):
        assert obj["metadata"]["namespace"] == "ns1"
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        assert obj["metadata"]["labels"]["modelregistry.opendatahub.io/upload-job"] == "up"
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["restartPolicy"] == "Never"
    assert container["command"] == ["model-registry-operator", "upload"]
    assert container["image"] == "quay.io/x/operator:1"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2]
    assert job["metadata"]["annotations"][NAME_ANNOTATION] == "up"

    env = env_of(job)
    assert env["MODEL_SYNC_SOURCE_TYPE"] == source
    assert env["MODEL_SYNC_DESTINATION_TYPE"] == destination
    assert env["MODEL_SYNC_MODEL_UPLOAD_INTENT"] == intent
    assert env["MODEL_SYNC_REGISTRY_SERVER_ADDRESS"] == "https://mr.example.com"
    assert (env["MODEL_SYNC_REGISTRY_PORT"], env["MODEL_SYNC_REGISTRY_IS_SECURE"]) == ("443", "true")
    assert env["MODEL_SYNC_METADATA_CONFIGMAP_PATH"] == "/var/run/model-upload/metadata"
    assert not any(e.get("valueFrom") for e in container["env"]), "credentials come from files, not env"

    # Every *_PATH variable points into a mount of the matching volume.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert {m["name"] for m in mounts.values()} == set(volumes)
    for name, value in env.items():
        if name.endswith(("_CREDENTIALS_PATH", "_CONFIGMAP_PATH", "CUSTOM_CA", "TOKEN_PATH", "SOURCE_PATH")):
            assert any(value == path or value.startswith(path + "/") for path in mounts), (name, value)
    for path, mount in mounts.items():
        if path != "/var/run/model-upload/scratch":
            assert mount["readOnly"] is True, path

    # The ConfigMap carries the metadata keys the upload program reads.
    data = cm["data"]
    assert data["ModelArtifact.model_source_name"] == "up"
    assert data["ModelArtifact.model_source_group"] == "ns1"
    if intent == "create_model":
        assert data["RegisteredModel.name"] == "llm"
        assert json.loads(data["RegisteredModel.custom_properties"]) == {"size": 7, "ok": True}
        assert data["ModelVersion.author"] == "alice"
        assert data["ModelArtifact.model_format_name"] == "onnx"
        assert "MODEL_SYNC_MODEL_ID" not in env
    elif intent == "create_version":
        assert env["MODEL_SYNC_MODEL_ID"] == "4"
        assert data["ModelVersion.name"] == "v2"
    else:
        assert (env["MODEL_SYNC_MODEL_ARTIFACT_ID"], env["MODEL_SYNC_MODEL_VERSION_ID"]) == ("12", "11")


@pytest.mark.parametrize(("source", "destination", "intent"),
                         list(itertools.product(SOURCES, DESTINATIONS, INTENTS)))
def test_rendered_env_is_understood_by_the_upload_program(
    source: str, destination: str, intent: str, tmp_path: Any
) -> None:
    """The env the Job gets, with its mounts relocated under tmp_path, passes the program's own checks."""
    cm, job = render(spec_raw(source, destination, intent))
    env = env_of(job)
    root = tmp_path / "mnt"

    def relocate(path: str) -> str:
        return str(root) + path

    for name in list(env):
        if env[name].startswith("/var/run/model-upload"):
            env[name] = relocate(env[name])
    (root / "var/run/model-upload/metadata").mkdir(parents=True)
    for key, value in cm["data"].items():
        (root / "var/run/model-upload/metadata" / key).write_text(value)
    for side in ("source", "destination"):
        s3_dir = root / f"var/run/model-upload/{side}-s3"
        s3_dir.mkdir(parents=True)
        (s3_dir / "AWS_ACCESS_KEY_ID").write_text("akid")
        (s3_dir / "AWS_SECRET_ACCESS_KEY").write_text("secret")
        oci_dir = root / f"var/run/model-upload/{side}-oci"
        oci_dir.mkdir(parents=True)
        auths = {"quay.io": {"auth": "dTpw"}, "registry.local:5000": {"auth": "dTpw"}}
        (oci_dir / ".dockerconfigjson").write_text(json.dumps({"auths": auths}))
    (root / "var/run/model-upload/source-uri").mkdir(parents=True)
    (root / "var/run/model-upload/source-uri/URI").write_text("https://example.com/other.tar.gz")
    (root / "var/run/model-upload/source-pvc/llm/v1").mkdir(parents=True)
    (root / "var/run/model-upload/registry-token").mkdir(parents=True)
    (root / "var/run/model-upload/registry-token/token").write_text("tok")
    (root / "var/run/model-upload/registry-ca").mkdir(parents=True)
    (root / "var/run/model-upload/registry-ca/ca.crt").write_text("pem")
    cfg = load_config([], env)
    assert cfg.intent == intent
    assert cfg.source.type == source
    assert cfg.destination.type == destination
    assert cfg.registry.url == "https://mr.example.com:443"
    assert cfg.registry.token is not None
    assert cfg.metadata_path is not None


def test_job_options_and_defaults() -> None:
    raw = spec_raw("s3", "oci", "create_model", job={
        "image": "example.com/up:2", "serviceAccountName": "uploader", "backoffLimit": 0,
        "activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 60, "scratchSize": "20Gi",
        "resources": {"limits": {"memory": "2Gi"}}})
    _, job = render(raw)
    pod = job["spec"]["template"]["spec"]
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (0, 600)
    assert job["spec"]["ttlSecondsAfterFinished"] == 60
    assert pod["serviceAccountName"] == "uploader"
    assert pod["containers"][0]["image"] == "example.com/up:2"
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "2Gi"}}
    assert {"name": "scratch", "emptyDir": {"sizeLimit": "20Gi"}} in pod["volumes"]
    _, default = render(spec_raw("s3", "oci", "create_model"))
    assert default["spec"]["backoffLimit"] == 3
    assert "serviceAccountName" not in default["spec"]["template"]["spec"]
    assert default["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] == "256Mi"


def test_names_are_deterministic_and_short() -> None:
    assert child_name("a", "upload") == "a-upload"
    long = "x" * 80
    name = child_name(long, "upload")
    assert len(name) <= 63
    assert name == child_name(long, "upload")
    assert name.endswith("-upload")
    assert child_name(long, "upload") != child_name("x" * 79, "upload")
    raw = spec_raw("s3", "oci", "create_model")
    _, job = render(raw)
    assert job["metadata"]["annotations"][SPEC_HASH_ANNOTATION] == spec_hash(raw)
    assert spec_hash(raw) != spec_hash({**raw, "intent": "create_version"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": {}}, "exactly one of s3, uri, oci or pvc"),
        ({"source": {**SOURCES["s3"], **SOURCES["uri"]}}, "exactly one of s3, uri, oci or pvc"),
        ({"destination": {"oci": {"uri": "https://registry/x:1"}}}, "pattern"),
        ({"registry": {}}, "exactly one of name"),
        ({"registry": {"name": "mr", "address": "http://x"}}, "exactly one of name"),
        ({"intent": "delete"}, "intent"),
    ],
)
def test_invalid_specs_are_rejected(change: dict[str, Any], message: str) -> None:
    raw = {**spec_raw("s3", "oci", "create_model"), **change}
    with pytest.raises(ValidationError):
        ModelUploadJobSpec.model_validate(raw)
    rules = json.dumps(model_upload_job_crd())
    if "exactly one" in message:
        assert message in rules


def test_crd_columns_and_immutable_spec() -> None:
    crd = model_upload_job_crd()
    assert crd["metadata"]["name"] == "modeluploadjobs.modelregistry.opendatahub.io"
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["storage"], version["subresources"]) == ("v1alpha1", True, {"status": {}})
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Phase", "Model", "Version", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert {"rule": "self == oldSelf", "message": "spec is immutable: create a new ModelUploadJob to upload again"} in \
        spec["x-kubernetes-validations"]

    def described(node: Any, path: str = "spec") -> None:
        for name, prop in (node.get("properties") or {}).items():
            assert prop.get("description"), f"{path}.{name} has no description"
            described(prop, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            described(node["items"], path + "[]")

    described(spec)


def test_references_and_registry_url() -> None:
    spec = ModelUploadJobSpec.model_validate(spec_raw("s3", "s3", "create_model"))
    assert [(k, n) for k, n, _ in referenced_objects(spec)] == [
        ("Secret", "s3-src"), ("Secret", "s3-dst"), ("Secret", "mr-token"), ("ConfigMap", "mr-ca")]
    pvc = ModelUploadJobSpec.model_validate(spec_raw("pvc", "oci", "create_model"))
    assert ("PersistentVolumeClaim", "models") in [(k, n) for k, n, _ in referenced_objects(pvc)]
    assert registry_url(RegistryEndpoint("http://mr.ns.svc.cluster.local", 8080, False)) == \
        "http://mr.ns.svc.cluster.local:8080"
    assert registry_url(RegistryEndpoint("https://mr:8443/", 443, True)) == "https://mr:8443"


@pytest.mark.parametrize(
    ("registry_spec", "expected"),
    [
        ({"rest": {}}, RegistryEndpoint("http://mr.ns.svc.cluster.local", 8080, False)),
        ({"rest": {"port": 9000}}, RegistryEndpoint("http://mr.ns.svc.cluster.local", 9000, False)),
        ({"rest": {}, "kubeRBACProxy": {}}, RegistryEndpoint("https://mr.ns.svc.cluster.local", 8443, True)),
        ({"rest": {}, "oauthProxy": {"port": 9443}}, RegistryEndpoint("https://mr.ns.svc.cluster.local", 9443, True)),
        ({"rest": {}, "istio": {}}, RegistryEndpoint("http://mr.ns.svc.cluster.local", 8080, True)),
    ],
)
def test_registry_endpoint_follows_the_security_mode(registry_spec: dict[str, Any], expected: RegistryEndpoint) -> None:
    assert registry_endpoint("mr", "ns", registry_spec) == expected


# ------------------------------------------------------------------------------------ status
NOW = "2026-01-01T00:00:00Z"
JOB = {"metadata": {"name": "up-upload", "uid": "j1"}, "status": {"startTime": NOW}}


def obs(**kw: Any) -> UploadObservation:
    return UploadObservation(**{"generation": 1, "job_name": "up-upload", "config_map_name": "up-metadata", **kw})


def pod(name: str, phase: str, state: dict[str, Any], created: str = NOW) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created},
            "status": {"phase": phase, "containerStatuses": [{"name": "upload", "state": state}]}}


def terminated(code: int, message: str = "", reason: str | None = None) -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "message": message, "reason": reason or ("Completed" if code == 0 else
                                                                                      "Error"),
                           "startedAt": NOW, "finishedAt": "2026-01-01T00:01:00Z"}}


def conds(status: UploadStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def job_with(*conditions: tuple[str, str, str]) -> dict[str, Any]:
    return {**JOB, "status": {**JOB["status"], "conditions": [
        {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": "2026-01-01T00:02:00Z"}
        for t, r, m in conditions]}}


def test_status_waiting_for_the_registry_then_pending_job() -> None:
    waiting = upload_status(obs(problem=Problem(REGISTRY_NOT_FOUND, "ModelRegistry 'mr' not found")), {})
    assert waiting.phase == "Pending"
    assert conds(waiting)["RegistryResolved"] == (FALSE, REGISTRY_NOT_FOUND)
    assert waiting.fields["message"] == "ModelRegistry 'mr' not found"
    config = upload_status(obs(problem=Problem(CONFIGURATION_ERROR, "Secret 'x' not found")), {})
    assert "RegistryResolved" not in conds(config)
    assert conds(config)["Started"] == (FALSE, CONFIGURATION_ERROR)
    created = upload_status(obs(job=JOB, registry_url="http://mr:8080"), {})
    assert created.phase == "Pending"
    assert conds(created)["RegistryResolved"] == (TRUE, "Resolved")
    assert created.fields["registryURL"] == "http://mr:8080"


def test_status_image_pull_failure_stays_pending_with_the_reason() -> None:
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x"'}}
    status = upload_status(obs(job=JOB, pods=[pod("p1", "Pending", waiting)]), {})
    assert status.phase == "Pending"
    assert conds(status)["Started"] == (FALSE, "ImagePullBackOff")
    assert "Back-off pulling" in status.fields["message"]


def test_status_running_then_succeeded_with_ids() -> None:
    running = upload_status(obs(job=JOB, pods=[pod("p1", "Running", {"running": {"startedAt": NOW}})]), {})
    assert running.phase == "Running"
    assert running.fields["startTime"] == NOW
    assert conds(running)["Started"] == (TRUE, "PodRunning")
    result = {"intent": "create_model", "RegisteredModel": {"id": "1"}, "ModelVersion": {"id": "2"},
              "ModelArtifact": {"id": "3", "uri": "oci://r/m:v1"}, "uri": "oci://r/m:v1", "digest": "sha256:ab",
              "bytes": 10, "files": 2}
    done = pod("p1", "Succeeded", terminated(0, json.dumps(result)))
    status = upload_status(obs(job=job_with(("Complete", "", "")), pods=[done]), {"phase": "Running",
                                                                                    "startTime": NOW})
    assert status.phase == "Succeeded"
    assert status.terminal
    assert (status.fields["registeredModelId"], status.fields["modelVersionId"], status.fields["modelArtifactId"]) \
        == ("1", "2", "3")
    assert status.fields["artifactURI"] == "oci://r/m:v1"
    assert (status.fields["bytes"], status.fields["files"], status.fields["digest"]) == (10, 2, "sha256:ab")
    assert status.fields["completionTime"] == "2026-01-01T00:02:00Z"
    assert conds(status)["Complete"] == (TRUE, "Uploaded")
    # Progress ends complete even when the Pod's last report was lost.
    assert status.fields["progress"] == {"stage": "Completed", "bytesTransferred": 10, "bytesTotal": 10,
                                         "percent": 100}
    reported = {"stage": "Registering", "bytesTransferred": 10, "bytesTotal": 10, "percent": 100,
                "bytesPerSecond": 5, "updateTime": NOW}
    again = upload_status(obs(job=job_with(("Complete", "", "")), pods=[done]), {"progress": reported})
    assert again.fields["progress"] == {**reported, "stage": "Completed"}
    assert "progress" not in running.fields  # while running, only the Pod writes it
    # The Job and its Pods may go (TTL): what was learnt stays.
    later = upload_status(obs(job=None), {**status.fields, "phase": "Succeeded"})
    assert later.phase == "Succeeded"
    assert later.fields["modelArtifactId"] == "3"


def test_status_failures_name_the_reason() -> None:
    failed_pod = pod("p1", "Failed", terminated(1, "upload failed: S3 NoSuchKey: no object s3://b/k"))
    retrying = upload_status(obs(job=JOB, pods=[failed_pod]), {})
    assert retrying.phase == "Running"
    assert conds(retrying)["Started"] == (TRUE, "Retrying")
    assert "attempt 1 failed: exit code 1: upload failed: S3 NoSuchKey" in retrying.fields["message"]

    failed = upload_status(obs(job=job_with(("Failed", "BackoffLimitExceeded", "Job has reached the limit")),
                               pods=[failed_pod]), {})
    assert failed.phase == "Failed"
    assert conds(failed)["Failed"] == (TRUE, "TransferFailed")
    assert failed.fields["message"] == "exit code 1: upload failed: S3 NoSuchKey: no object s3://b/k"

    config = pod("p1", "Failed", terminated(2, "configuration error: bad"))
    assert conds(upload_status(obs(job=job_with(("Failed", "PodFailurePolicy", "")), pods=[config]), {}))[
        "Failed"] == (TRUE, CONFIGURATION_ERROR)
    registry = pod("p1", "Failed", terminated(3, "upload failed: name taken"))
    assert conds(upload_status(obs(job=job_with(("Failed", "BackoffLimitExceeded", "")), pods=[registry]), {}))[
        "Failed"] == (TRUE, "RegistryError")
    oom = pod("p1", "Failed", terminated(137, "", reason="OOMKilled"))
    assert conds(upload_status(obs(job=job_with(("Failed", "BackoffLimitExceeded", "")), pods=[oom]), {}))[
        "Failed"] == (TRUE, "OOMKilled")
    deadline = upload_status(obs(job=job_with(("Failed", "DeadlineExceeded", "Job was active longer than allowed")),
                                 pods=[]), {})
    assert conds(deadline)["Failed"] == (TRUE, DEADLINE_EXCEEDED)


def test_a_killed_attempt_is_told_by_the_last_lines_of_its_log() -> None:
    """No termination message (the runtime fell back to the log tail): the newest lines are kept,
    as many as fit; the program's own one-line messages keep their beginning (the field's name)."""
    log = "\n".join(f"2026-01-01 00:00:{i:02d} - upload - INFO - upload: {i} MiB / 80 MiB" for i in range(60))
    killed = pod("p1", "Failed", terminated(137, log + "\n"))
    failed = upload_status(obs(job=job_with(("Failed", "BackoffLimitExceeded", "")), pods=[killed]), {})
    message = failed.fields["message"]
    assert conds(failed)["Failed"] == (TRUE, "TransferFailed")
    assert message.startswith("exit code 137: ... 2026-01-01 00:00:")
    assert message.endswith("upload: 58 MiB / 80 MiB | 2026-01-01 00:00:59 - upload - INFO - upload: 59 MiB / 80 MiB")
    assert "upload: 0 MiB" not in message
    assert len(message) <= 1024 - 128

    long = "configuration error: " + "x" * 2000
    config = pod("p1", "Failed", terminated(2, long))
    message = upload_status(obs(job=job_with(("Failed", "PodFailurePolicy", "")), pods=[config]), {}).fields["message"]
    assert message.startswith("exit code 2: configuration error: xxx")
    assert message.endswith("...")


def test_status_reports_a_changed_spec_without_acting() -> None:
    status = upload_status(obs(job=JOB, spec_changed=True), {})
    assert conds(status)["SpecChanged"] == (TRUE, "SpecImmutable")
    assert conds(upload_status(obs(job=JOB), {}))["SpecChanged"] == (FALSE, "AsCreated")


def test_offline_render_resolves_the_registry_from_the_same_file() -> None:
    docs = [
        {"apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry", "metadata": {"name": "mr"},
         "spec": {"rest": {"port": 9000}, "postgres": {"generateDeployment": True}}},
        {"apiVersion": "modelregistry.opendatahub.io/v1alpha1", "kind": "ModelUploadJob",
         "metadata": {"name": "up", "namespace": "ns"},
         "spec": {**spec_raw("s3", "oci", "create_model"), "registry": {"name": "mr"}}},
    ]
    objects = render_documents(docs)
    job = next(o for o in objects if o["kind"] == "Job")
    env = env_of(job)
    assert (env["MODEL_SYNC_REGISTRY_SERVER_ADDRESS"], env["MODEL_SYNC_REGISTRY_PORT"]) == (
        "http://mr.ns.svc.cluster.local", "9000")
    with pytest.raises(ValueError, match="ModelUploadJob up"):
        render_documents([{**docs[1], "spec": {"intent": "create_model"}}])
