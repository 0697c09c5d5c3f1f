"""ModelUploadJob: the CRD, rendering for every source x destination x intent, and the status reducer."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from model_registry_operator.api.common import QUANTITY_SCHEMA
from model_registry_operator.api.crd import model_upload_job_crd
from model_registry_operator.api.modeluploadjob import IMAGE_PATTERN, JobOptions, ModelUploadJobSpec
from model_registry_operator.names import (
    CONFIGURATION_ERROR,
    DEADLINE_EXCEEDED,
    REGISTRY_NOT_FOUND,
    SPEC_HASH_ANNOTATION,
)
from model_registry_operator.reconcile.modeluploadjob import _problems, image_problem, referenced_objects, registry_url
from model_registry_operator.render.modeluploadjob import (
    DEFAULT_SCRATCH_SIZE,
    NAME_ANNOTATION,
    RegistryEndpoint,
    UploadJobRef,
    address_endpoint,
    child_name,
    registry_endpoint,
    render_model_upload_job,
    spec_hash,
    token_problem,
)
from model_registry_operator.render.offline import render_documents
from model_registry_operator.status.conditions import FALSE, TRUE
from model_registry_operator.status.modeluploadjob import (
    Problem,
    UploadObservation,
    UploadStatus,
    upload_status,
)
from tests.backends.upload_program import run_python

from .upload_cases import DESTINATIONS, ENDPOINT, INTENTS, SOURCES, spec_raw

REF = UploadJobRef("up", "ns1", "uid-1")


def render(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = ModelUploadJobSpec.model_validate(raw)
    objects = render_model_upload_job(REF, spec, raw, ENDPOINT, "quay.io/x/operator:1")
    kinds = ["ConfigMap", "ServiceAccount", "Role", "RoleBinding", "Job"]
    if spec.job and spec.job.service_account_name:
        kinds.remove("ServiceAccount")
    assert [o["kind"] for o in objects] == kinds
    return objects[0], objects[-1]


def test_the_upload_pod_may_write_only_its_own_progress() -> None:
    """The dedicated ServiceAccount (or the one the spec names, never the namespace's ``default``)
    is the RoleBinding's only subject."""
    for options, account in (({}, "up-upload"), ({"job": {"serviceAccountName": "uploader"}}, "uploader")):
        raw = spec_raw("s3", "oci", "create_model", **options)
        *_, role, binding, job = render_model_upload_job(
            REF, ModelUploadJobSpec.model_validate(raw), raw, ENDPOINT, "quay.io/x/operator:1"
        )
        assert job["spec"]["template"]["spec"]["serviceAccountName"] == account
        assert role["metadata"]["name"] == binding["metadata"]["name"] == "up-upload-progress"
        assert role["rules"] == [
            {
                "apiGroups": ["modelregistry.opendatahub.io"],
                "resources": ["modeluploadjobs/status"],
                "resourceNames": ["up"],
                "verbs": ["get", "patch"],
            }
        ]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "up-upload-progress",
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "ns1"}]
        for obj in (role, binding):
            assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        env = env_of(job)
        assert (env["MODEL_UPLOAD_JOB_NAME"], env["MODEL_UPLOAD_JOB_NAMESPACE"]) == ("up", "ns1")


def env_of(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize(("source", "destination", "intent"), list(itertools.product(SOURCES, DESTINATIONS, INTENTS)))
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
    assert "command" not in container  # the upload image's entrypoint: model-registry-upload
    assert container["image"] == "quay.io/x/operator:1"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
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
        if path not in ("/var/run/model-upload/scratch", "/var/run/model-upload/tmp"):
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


@pytest.mark.parametrize(("source", "destination", "intent"), list(itertools.product(SOURCES, DESTINATIONS, INTENTS)))
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
    # The program's own loader, in its own environment (it does not share the operator's).
    loaded = json.loads(
        run_python(
            "import json, sys\n"
            "from model_registry_upload.config import load_config\n"
            "cfg = load_config([], json.load(sys.stdin))\n"
            "print(json.dumps([cfg.intent, cfg.source.type, cfg.destination.type, cfg.registry.url,"
            " cfg.registry.token is not None, cfg.metadata_path is not None]))",
            stdin=json.dumps(env),
        )
    )
    assert loaded == [intent, source, destination, "https://mr.example.com:443", True, True]


def test_job_options_and_defaults() -> None:
    raw = spec_raw(
        "s3",
        "oci",
        "create_model",
        job={
            "image": "example.com/up:2",
            "serviceAccountName": "uploader",
            "backoffLimit": 0,
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 60,
            "scratchSize": "20Gi",
            "resources": {"limits": {"memory": "2Gi"}},
        },
    )
    _, job = render(raw)
    pod = job["spec"]["template"]["spec"]
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (0, 600)
    assert job["spec"]["ttlSecondsAfterFinished"] == 60
    assert pod["serviceAccountName"] == "uploader"
    assert pod["containers"][0]["image"] == "example.com/up:2"
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "2Gi"},
    }
    assert {"name": "scratch", "emptyDir": {"sizeLimit": "20Gi"}} in pod["volumes"]
    _, default = render(spec_raw("s3", "oci", "create_model"))
    assert default["spec"]["backoffLimit"] == 3
    assert default["spec"]["template"]["spec"]["serviceAccountName"] == "up-upload"
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
    assert {
        "rule": "self == oldSelf",
        "message": "spec is immutable: create a new ModelUploadJob to upload again",
    } in spec["x-kubernetes-validations"]

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
        ("Secret", "s3-src"),
        ("Secret", "s3-dst"),
        ("Secret", "mr-token"),
        ("ConfigMap", "mr-ca"),
    ]
    pvc = ModelUploadJobSpec.model_validate(spec_raw("pvc", "oci", "create_model"))
    assert ("PersistentVolumeClaim", "models") in [(k, n) for k, n, _ in referenced_objects(pvc)]
    assert (
        registry_url(RegistryEndpoint("http://mr.ns.svc.cluster.local", 8080, False))
        == "http://mr.ns.svc.cluster.local:8080"
    )
    assert registry_url(RegistryEndpoint("https://mr:8443/", 443, True)) == "https://mr:8443"


@pytest.mark.parametrize(
    ("registry_spec", "expected"),
    [
        ({"rest": {}}, RegistryEndpoint("http://mr.ns.svc.cluster.local", 8080, False)),
        ({"rest": {"port": 9000}}, RegistryEndpoint("http://mr.ns.svc.cluster.local", 9000, False)),
        ({"rest": {}, "kubeRBACProxy": {}}, RegistryEndpoint("https://mr.ns.svc.cluster.local", 8443, True)),
        ({"rest": {}, "oauthProxy": {"port": 9443}}, RegistryEndpoint("https://mr.ns.svc.cluster.local", 9443, True)),
        ({"rest": {}, "istio": {}}, RegistryEndpoint("http://mr.ns.svc.cluster.local", 8080, True, "mesh")),
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
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"phase": phase, "containerStatuses": [{"name": "upload", "state": state}]},
    }


def terminated(code: int, message: str = "", reason: str | None = None) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": code,
            "message": message,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": NOW,
            "finishedAt": "2026-01-01T00:01:00Z",
        }
    }


def conds(status: UploadStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def job_with(*conditions: tuple[str, str, str]) -> dict[str, Any]:
    return {
        **JOB,
        "status": {
            **JOB["status"],
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": "2026-01-01T00:02:00Z"}
                for t, r, m in conditions
            ],
        },
    }


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
    result = {
        "intent": "create_model",
        "RegisteredModel": {"id": "1"},
        "ModelVersion": {"id": "2"},
        "ModelArtifact": {"id": "3", "uri": "oci://r/m:v1"},
        "uri": "oci://r/m:v1",
        "digest": "sha256:ab",
        "bytes": 10,
        "files": 2,
    }
    done = pod("p1", "Succeeded", terminated(0, json.dumps(result)))
    status = upload_status(obs(job=job_with(("Complete", "", "")), pods=[done]), {"phase": "Running", "startTime": NOW})
    assert status.phase == "Succeeded"
    assert status.terminal
    assert (status.fields["registeredModelId"], status.fields["modelVersionId"], status.fields["modelArtifactId"]) == (
        "1",
        "2",
        "3",
    )
    assert status.fields["artifactURI"] == "oci://r/m:v1"
    assert (status.fields["bytes"], status.fields["files"], status.fields["digest"]) == (10, 2, "sha256:ab")
    assert status.fields["completionTime"] == "2026-01-01T00:02:00Z"
    assert conds(status)["Complete"] == (TRUE, "Uploaded")
    # Progress ends complete even when the Pod's last report was lost.
    assert status.fields["progress"] == {"stage": "Completed", "bytesTransferred": 10, "bytesTotal": 10, "percent": 100}
    reported = {
        "stage": "Registering",
        "bytesTransferred": 10,
        "bytesTotal": 10,
        "percent": 100,
        "bytesPerSecond": 5,
        "updateTime": NOW,
    }
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

    failed = upload_status(
        obs(job=job_with(("Failed", "BackoffLimitExceeded", "Job has reached the limit")), pods=[failed_pod]), {}
    )
    assert failed.phase == "Failed"
    assert conds(failed)["Failed"] == (TRUE, "TransferFailed")
    assert failed.fields["message"] == "exit code 1: upload failed: S3 NoSuchKey: no object s3://b/k"

    config = pod("p1", "Failed", terminated(2, "configuration error: bad"))
    assert conds(upload_status(obs(job=job_with(("Failed", "PodFailurePolicy", "")), pods=[config]), {}))["Failed"] == (
        TRUE,
        CONFIGURATION_ERROR,
    )
    registry = pod("p1", "Failed", terminated(3, "upload failed: name taken"))
    assert conds(upload_status(obs(job=job_with(("Failed", "BackoffLimitExceeded", "")), pods=[registry]), {}))[
        "Failed"
    ] == (TRUE, "RegistryError")
    oom = pod("p1", "Failed", terminated(137, "", reason="OOMKilled"))
    assert conds(upload_status(obs(job=job_with(("Failed", "BackoffLimitExceeded", "")), pods=[oom]), {}))[
        "Failed"
    ] == (TRUE, "OOMKilled")
    deadline = upload_status(
        obs(job=job_with(("Failed", "DeadlineExceeded", "Job was active longer than allowed")), pods=[]), {}
    )
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
        {
            "apiVersion": "modelregistry.opendatahub.io/v1beta1",
            "kind": "ModelRegistry",
            "metadata": {"name": "mr"},
            "spec": {"rest": {"port": 9000}, "postgres": {"generateDeployment": True}},
        },
        {
            "apiVersion": "modelregistry.opendatahub.io/v1alpha1",
            "kind": "ModelUploadJob",
            "metadata": {"name": "up", "namespace": "ns"},
            "spec": {**spec_raw("s3", "oci", "create_model"), "registry": {"name": "mr"}},
        },
    ]
    objects = render_documents(docs)
    job = next(o for o in objects if o["kind"] == "Job")
    env = env_of(job)
    assert (env["MODEL_SYNC_REGISTRY_SERVER_ADDRESS"], env["MODEL_SYNC_REGISTRY_PORT"]) == (
        "http://mr.ns.svc.cluster.local",
        "9000",
    )
    with pytest.raises(ValueError, match="ModelUploadJob up"):
        render_documents([{**docs[1], "spec": {"intent": "create_model"}}])


# ------------------------------------------------------------- security and bad input (issue 12)


def objects_of(raw: dict[str, Any], endpoint: RegistryEndpoint = ENDPOINT, **kw: Any) -> dict[str, dict[str, Any]]:
    """The rendered objects by kind."""
    spec = ModelUploadJobSpec.model_validate(raw)
    return {o["kind"]: o for o in render_model_upload_job(REF, spec, raw, endpoint, "quay.io/x/operator:1", **kw)}


def test_scratch_size_lots_is_rejected_by_the_schema_and_the_reconcile() -> None:
    """``scratchSize: lots`` was accepted: the CRD has the Kubernetes quantity pattern and the model
    (the reconcile's check) rejects it naming the field."""
    schema = model_upload_job_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    scratch = schema["properties"]["spec"]["properties"]["job"]["properties"]["scratchSize"]
    assert scratch["pattern"] == QUANTITY_SCHEMA["pattern"]
    assert scratch["x-kubernetes-int-or-string"] is True
    with pytest.raises(ValidationError) as info:
        ModelUploadJobSpec.model_validate(spec_raw("s3", "oci", "create_model", job={"scratchSize": "lots"}))
    assert "spec.job.scratchSize" in _problems(info.value)
    for good in ("20Gi", "500M", 1073741824, "1.5Ti"):
        ModelUploadJobSpec.model_validate(spec_raw("s3", "oci", "create_model", job={"scratchSize": good}))


def test_scratch_volume_is_bounded_by_default_and_by_scratch_size() -> None:
    volumes = {
        v["name"]: v
        for v in objects_of(spec_raw("s3", "oci", "create_model"))["Job"]["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["scratch"]["emptyDir"] == {"sizeLimit": DEFAULT_SCRATCH_SIZE}
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "64Mi"}
    assert env_of(objects_of(spec_raw("s3", "oci", "create_model"))["Job"])["TMPDIR"] == "/var/run/model-upload/tmp"
    sized = objects_of(spec_raw("s3", "oci", "create_model", job={"scratchSize": "50Gi"}))["Job"]
    assert {"name": "scratch", "emptyDir": {"sizeLimit": "50Gi"}} in sized["spec"]["template"]["spec"]["volumes"]


NAME_63 = "a" * 46 + "-" + "b" * 16  # 63 characters, a '-' where truncation to 47 would end


def test_a_63_character_name_gives_valid_labels_and_names() -> None:
    """A ModelUploadJob of 63 characters got a label ending in '-': every label value and every
    derived name is now valid (RFC 1123, at most 63), and the CRD rejects longer names."""
    ref = UploadJobRef(NAME_63, "ns1", "uid-1")
    raw = spec_raw("s3", "oci", "create_model")
    objects = render_model_upload_job(ref, ModelUploadJobSpec.model_validate(raw), raw, ENDPOINT, "quay.io/x/o:1")
    label_value = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
    dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    for obj in objects:
        name = obj["metadata"]["name"]
        assert len(name) <= 63
        assert dns_label.match(name), name
        labels = {**obj["metadata"]["labels"]}
        if obj["kind"] == "Job":
            labels.update(obj["spec"]["template"]["metadata"]["labels"])
        for value in labels.values():
            assert len(value) <= 63
            assert label_value.match(value), value
    rule = model_upload_job_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
    assert "self.metadata.name.size() <= 63" in rule[0]["rule"]
    assert "metadata.name" in rule[0]["message"]


@pytest.mark.parametrize("field", ["job.image", "destination.oci.baseImage", "destination.oci.uri", "source.oci.uri"])
def test_rocket_image_is_rejected_naming_the_field(field: str) -> None:
    """``quay.io/x:🚀`` as an image: the CRD carries the OCI reference grammar and the reconcile's
    check names the field (a condition, never a render traceback)."""
    raw = spec_raw("oci", "oci", "create_model")
    section, *path = field.split(".")
    if section == "job":
        raw["job"] = {"image": "quay.io/x:🚀"}
    else:
        raw[section] = {path[0]: {**raw[section][path[0]], path[1]: "quay.io/x:🚀"}}
    with pytest.raises(ValidationError) as info:
        ModelUploadJobSpec.model_validate(raw)
    assert f"spec.{field}" in _problems(info.value)
    crd = json.dumps(model_upload_job_crd())
    assert json.dumps(IMAGE_PATTERN)[1:-1] in crd
    assert re.match(IMAGE_PATTERN, "quay.io/opendatahub/model-registry-operator:latest")
    assert re.match(IMAGE_PATTERN, "registry.local:5000/org/img@sha256:" + "0" * 64)
    assert not re.match(IMAGE_PATTERN, "quay.io/x:🚀")
    assert not re.match(IMAGE_PATTERN, "quay.io/x:1\n  - --evil")


def test_superscript_two_is_no_port_in_the_registry_url() -> None:
    """``str.isdigit()`` took '²' for a digit: the reconcile checks ASCII digits."""
    assert registry_url(RegistryEndpoint("https://mr:²", 8443, True)) == "https://mr:²:8443"
    assert registry_url(RegistryEndpoint("https://mr:9443", 8443, True)) == "https://mr:9443"


def test_istio_registry_gets_the_mesh_sidecar_and_no_token_over_plain_http() -> None:
    """An Istio registry got an http:// address and the token in clear: the upload Pod now joins
    the mesh (sidecar injected, native so the Job completes) and the program is told the hop is
    encrypted by it; without any security mode there is no token at all."""
    endpoint = registry_endpoint("mr", "ns1", {"rest": {}, "istio": {}})
    assert endpoint == RegistryEndpoint("http://mr.ns1.svc.cluster.local", 8080, True, "mesh")
    raw = spec_raw("s3", "oci", "create_model", registry={"name": "mr"})
    job = objects_of(raw, endpoint)["Job"]
    template = job["spec"]["template"]
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert template["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"
    env = env_of(job)
    assert env["MODEL_SYNC_REGISTRY_TOKEN_OVER_HTTP"] == "mesh"
    plain = objects_of(raw, registry_endpoint("mr", "ns1", {"rest": {}}))["Job"]
    assert "sidecar.istio.io/inject" not in plain["spec"]["template"]["metadata"]["labels"]
    assert env_of(plain)["MODEL_SYNC_REGISTRY_IS_SECURE"] == "false"
    assert "MODEL_SYNC_REGISTRY_TOKEN_OVER_HTTP" not in env_of(plain)
    for mode in ("kubeRBACProxy", "oauthProxy"):
        assert registry_endpoint("mr", "ns1", {"rest": {}, mode: {}}).address.startswith("https://")


@pytest.mark.parametrize(
    "registry",
    [
        {"address": "http://mr.example.com", "tokenSecret": {"name": "t", "key": "token"}},
        {"address": "http://mr.example.com", "isSecure": True},
    ],
    ids=["token-secret", "is-secure"],
)
def test_a_token_for_a_plain_http_address_needs_the_explicit_opt_out(registry: dict[str, Any]) -> None:
    """A token to an ``http://`` address is rejected (CRD rule and model) unless
    ``allowTokenOverHTTP: true``, which the Job passes on as ``allow``."""
    raw = spec_raw("s3", "oci", "create_model", registry=registry)
    with pytest.raises(ValidationError, match="allowTokenOverHTTP"):
        ModelUploadJobSpec.model_validate(raw)
    assert "allowTokenOverHTTP" in json.dumps(model_upload_job_crd())
    allowed = {**raw, "registry": {**registry, "allowTokenOverHTTP": True}}
    spec = ModelUploadJobSpec.model_validate(allowed)
    endpoint = address_endpoint(spec.registry)
    assert env_of(objects_of(allowed, endpoint)["Job"])["MODEL_SYNC_REGISTRY_TOKEN_OVER_HTTP"] == "allow"


def test_a_plain_http_address_without_a_token_is_insecure() -> None:
    raw = spec_raw("s3", "oci", "create_model", registry={"address": "http://mr.example.com"})
    spec = ModelUploadJobSpec.model_validate(raw)
    endpoint = address_endpoint(spec.registry)
    assert (endpoint.is_secure, endpoint.token_over_http) == (False, "refuse")
    assert address_endpoint(ModelUploadJobSpec.model_validate(spec_raw("s3", "oci", "create_model")).registry).is_secure


def test_a_token_for_a_registry_without_security_needs_the_explicit_opt_out() -> None:
    """Found by the fuzz suite: ``registry.name`` naming a registry with no security mode, plus a
    ``tokenSecret``, mounted the token for a plain http:// address. It is now a problem naming the
    field, unless ``allowTokenOverHTTP: true``, which the Job passes on as ``allow``."""
    raw = spec_raw("s3", "oci", "create_model", registry={"name": "mr", "tokenSecret": {"name": "t", "key": "token"}})
    spec = ModelUploadJobSpec.model_validate(raw)
    endpoint = registry_endpoint("mr", "ns1", {"rest": {}})
    problem = token_problem(spec.registry, endpoint)
    assert problem is not None
    assert problem.startswith("spec.registry.tokenSecret: http://mr.ns1.svc.cluster.local serves plain HTTP")
    for secured in ({"rest": {}, "kubeRBACProxy": {}}, {"rest": {}, "istio": {}}):
        assert token_problem(spec.registry, registry_endpoint("mr", "ns1", secured)) is None
    allowed = ModelUploadJobSpec.model_validate({**raw, "registry": {**raw["registry"], "allowTokenOverHTTP": True}})
    opted_out = registry_endpoint("mr", "ns1", {"rest": {}}, allow_token_over_http=True)
    assert token_problem(allowed.registry, opted_out) is None
    job = objects_of(raw, opted_out)["Job"]
    assert env_of(job)["MODEL_SYNC_REGISTRY_TOKEN_OVER_HTTP"] == "allow"


PASSWORD = "url-pass-Zq81x"  # noqa: S105 - test value


def test_url_credentials_go_into_the_jobs_secret_not_plain_env() -> None:
    """``user:password@`` in the source URI, an S3 endpoint and the registry address: the Job's env
    references the Secret ``<name>-upload-urls``; no plain env value, no other object and the
    status URL carry the password."""
    creds = f"user:{PASSWORD}@"
    raw = spec_raw(
        "uri",
        "s3",
        "create_model",
        registry={"address": f"https://{creds}mr.example.com", "tokenSecret": {"name": "t", "key": "k"}},
    )
    raw["source"] = {"uri": {"uri": f"https://{creds}files.example.com/m.tar"}}
    raw["destination"] = {"s3": {**DESTINATIONS["s3"]["s3"], "endpoint": f"http://{creds}s3.local:9000"}}
    spec = ModelUploadJobSpec.model_validate(raw)
    endpoint = address_endpoint(spec.registry)
    objs = objects_of(raw, endpoint)
    secret = objs["Secret"]
    assert secret["metadata"]["name"] == "up-upload-urls"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert secret["stringData"] == {
        "MODEL_SYNC_SOURCE_URI": f"https://{creds}files.example.com/m.tar",
        "MODEL_SYNC_DESTINATION_AWS_ENDPOINT": f"http://{creds}s3.local:9000",
        "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": f"https://{creds}mr.example.com",
    }
    container = objs["Job"]["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs == {name: {"name": "up-upload-urls", "key": name} for name in secret["stringData"]}
    for kind, obj in objs.items():
        if kind != "Secret":
            assert PASSWORD not in json.dumps(obj), kind
    assert registry_url(endpoint) == "https://***@mr.example.com:443"
    assert "Secret" not in objects_of(spec_raw("uri", "s3", "create_model"))  # none without credentials


def test_dollar_in_user_values_is_doubled_in_env() -> None:
    """``$(VAR)`` in a user value was expanded by the kubelet: every env value has its ``$`` doubled
    (``$$`` is the kubelet's escape for a literal ``$``)."""
    raw = spec_raw(
        "s3",
        "oci",
        "create_model",
        registry={"address": "https://mr.example.com", "author": "$(MODEL_SYNC_REGISTRY_USER_TOKEN)"},
    )
    raw["source"] = {"s3": {**SOURCES["s3"]["s3"], "key": "models/$(HOME)/$$x"}}
    env = env_of(objects_of(raw, ENDPOINT)["Job"])
    assert env["MODEL_SYNC_REGISTRY_AUTHOR"] == "$$(MODEL_SYNC_REGISTRY_USER_TOKEN)"
    assert env["MODEL_SYNC_SOURCE_AWS_KEY"] == "models/$$(HOME)/$$$$x"
    for value in env.values():
        assert "$" not in value.replace("$$", "")


def test_hardened_pod_secret_modes_read_only_root_own_account() -> None:
    """Secret volumes at 0400 (0440 through fsGroup), read-only root filesystem, a ServiceAccount
    of its own bound to the progress Role (not ``default``), no fsGroup where OpenShift assigns it."""
    objs = objects_of(spec_raw("s3", "oci", "create_model"))
    pod = objs["Job"]["spec"]["template"]["spec"]
    secrets = [v for v in pod["volumes"] if "secret" in v]
    assert secrets
    assert all(v["secret"]["defaultMode"] == 0o400 for v in secrets)
    assert pod["securityContext"]["fsGroup"] == 65532
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert objs["ServiceAccount"]["metadata"]["name"] == pod["serviceAccountName"] == "up-upload"
    assert objs["RoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": "up-upload", "namespace": "ns1"}]
    openshift = objects_of(spec_raw("s3", "oci", "create_model"), openshift=True)["Job"]
    assert "fsGroup" not in openshift["spec"]["template"]["spec"]["securityContext"]


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({}, {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}),
        ({"requests": {"memory": "4Gi"}}, {"requests": {"cpu": "100m", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}),
        ({"limits": {"cpu": "2"}}, {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "2"}}),
    ],
    ids=["empty-keeps-the-defaults", "big-request-raises-the-limit", "limits-given"],
)
def test_resources_empty_keeps_sane_limits(resources: dict[str, Any], expected: dict[str, Any]) -> None:
    """``resources: {}`` removed every limit: the defaults now stay for what is left out."""
    job = objects_of(spec_raw("s3", "oci", "create_model", job={"resources": resources}))["Job"]
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"] == expected


def test_a_bad_image_that_got_in_is_a_condition_naming_the_field() -> None:
    """An image the CRD would refuse (an older CRD, or the operator's own default) is reported as
    ConfigurationError naming the field or the variable, not a render error retried in a loop."""
    spec = ModelUploadJobSpec.model_construct(job=JobOptions.model_construct(image="quay.io/x:🚀"))
    problem = image_problem(spec, "quay.io/ok/operator:1")
    assert problem is not None
    assert problem.reason == CONFIGURATION_ERROR
    assert problem.message.startswith("spec.job.image: 'quay.io/x:🚀' is not an image reference")
    plain = ModelUploadJobSpec.model_validate(spec_raw("s3", "oci", "create_model"))
    default = image_problem(plain, "x:🚀")
    assert default is not None
    assert default.message.startswith("RELATED_IMAGE_MODEL_UPLOAD_JOB_IMAGE: ")
    assert image_problem(plain, "quay.io/a:1") is None
