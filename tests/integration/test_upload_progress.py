"""The upload Pod writes its progress into its ModelUploadJob's status, and into nothing else.

The reporter of the upload program runs (in the program's own environment) against the real API
server with a real service account token (TokenRequest API), through the Role and RoleBinding the
operator renders for each upload. The operator runs meanwhile and keeps writing its own status fields: both coexist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from model_registry_operator.api.modeluploadjob import ModelUploadJobSpec
from model_registry_operator.kube import lookup
from model_registry_operator.render.modeluploadjob import RegistryEndpoint, UploadJobRef, render_model_upload_job
from model_registry_upload_contract import STATUS_FIELD_MANAGER as FIELD_MANAGER
from tests.backends.upload_program import popen_python, run_python

from .kube import Cluster, wait_for

MUJ = lookup("modelregistry.opendatahub.io/v1alpha1", "ModelUploadJob")
ENDPOINT = RegistryEndpoint("http://not-there.svc", 8080, False)
SPEC: dict[str, Any] = {
    # A registry that does not exist: the operator keeps the upload Pending and renders nothing.
    "registry": {"name": "not-there"},
    "intent": "create_model",
    "source": {"uri": {"uri": "https://example.com/model.tar"}},
    "destination": {"oci": {"uri": "registry.example.com/models/m:v1"}},
    "model": {"registeredModel": {"name": "m"}, "modelVersion": {"name": "v1"}},
}


def create_upload(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    doc = {
        "apiVersion": "modelregistry.opendatahub.io/v1alpha1",
        "kind": "ModelUploadJob",
        "metadata": {"name": name},
        "spec": SPEC,
    }
    cluster.apply_yaml(yaml.safe_dump(doc), namespace)
    return wait_for(lambda: cluster.get(MUJ, namespace, name), what=f"ModelUploadJob {name}")


def service_account_dir(cluster: Cluster, namespace: str, tmp: Path, account: str = "default") -> Path:
    """What a kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount."""
    wait_for(
        lambda: cluster.kubectl("get", "sa", account, "-n", namespace, check=False).returncode == 0,
        what=f"the service account {account}",
    )
    token = cluster.kubectl("create", "token", account, "-n", namespace).stdout.strip()
    ca = wait_for(
        lambda: (
            cluster.kubectl(
                "get", "configmap", "kube-root-ca.crt", "-n", namespace, "-o", "jsonpath={.data.ca\\.crt}", check=False
            ).stdout
        ),
        what="kube-root-ca.crt",
    )
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "token").write_text(token)
    (tmp / "ca.crt").write_text(ca)
    return tmp


def api_env(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    server = cluster.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    host, _, port = server.removeprefix("https://").rpartition(":")
    return {
        "MODEL_UPLOAD_JOB_NAME": name,
        "MODEL_UPLOAD_JOB_NAMESPACE": namespace,
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
    }


PROGRESS = """
import json, sys
from pathlib import Path
from model_registry_upload.progress import Progress
from model_registry_upload.status_report import StatusReporter
env, sa_dir = json.loads(sys.argv[1]), Path(sys.argv[2])
reporter = StatusReporter.from_env(env, sa_dir)
assert reporter is not None
with Progress(1000, interval=0.2, label="upload", report=reporter.report) as progress:
    progress.add(400)
    sys.stdin.readline()  # until the test has seen 400 in the status
    progress.add(600)
"""

REPORTS = """
import json, logging, sys
from pathlib import Path
from model_registry_upload.progress import ProgressSnapshot
from model_registry_upload.status_report import StatusReporter
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
env, sa_dir, count = json.loads(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
reporter = StatusReporter.from_env(env, sa_dir)
assert reporter is not None
print(json.dumps([reporter.report(ProgressSnapshot("Transferring", i + 1, count, 1.0)) for i in range(count)]))
"""


def reports(env: dict[str, str], sa_dir: Path, count: int) -> tuple[list[bool], str]:
    """(what each of ``count`` reports returned, the program's log)."""
    proc = popen_python(REPORTS, json.dumps(env), str(sa_dir), str(count))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out), err


def test_the_upload_pod_reports_progress_in_its_own_status_only(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    mine = create_upload(cluster, namespace, "mine")
    other = create_upload(cluster, namespace, "other")
    raw = mine["spec"]
    objects = render_model_upload_job(
        UploadJobRef("mine", namespace, mine["metadata"]["uid"]),
        ModelUploadJobSpec.model_validate(raw),
        raw,
        ENDPOINT,
        "example.com/op:1",
    )
    # The ServiceAccount, Role and RoleBinding exactly as the operator renders them for "mine".
    rbac = [o for o in objects if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    cluster.apply_yaml(yaml.safe_dump_all(rbac), namespace)
    sa_dir = service_account_dir(cluster, namespace, tmp_path / "sa", "mine-upload")

    env = json.dumps(api_env(cluster, namespace, "mine"))
    program = popen_python(PROGRESS, env, str(sa_dir))
    try:
        wait_for(
            lambda: (
                (((cluster.get(MUJ, namespace, "mine") or {}).get("status") or {}).get("progress") or {}).get(
                    "bytesTransferred"
                )
                == 400
            ),
            timeout=20,
            what="progress 400 of 1000 in the status",
        )
        _, err = program.communicate("go\n", timeout=60)
        assert program.returncode == 0, err
    finally:
        program.kill()
    body = cluster.get(MUJ, namespace, "mine")
    assert body is not None
    got = body["status"]["progress"]
    assert (got["stage"], got["bytesTransferred"], got["bytesTotal"], got["percent"]) == (
        "Registering",
        1000,
        1000,
        100,
    )
    assert got["updateTime"].endswith("Z")
    managers = {(f["manager"], f.get("subresource")) for f in body["metadata"]["managedFields"]}
    assert (FIELD_MANAGER, "status") in managers
    # The operator's own status fields live on beside it.
    assert body["status"]["phase"] == "Pending"
    assert body["status"]["conditions"]

    # The same token cannot write another upload's status: refused, logged once, nothing raised.
    results, log = reports(api_env(cluster, namespace, "other"), sa_dir, 2)
    assert results == [False, False]
    warnings = [line for line in log.splitlines() if "could not report progress" in line]
    assert len(warnings) == 1
    assert "HTTP 403" in warnings[0]
    assert (sa_dir / "token").read_text() not in log
    after = cluster.get(MUJ, namespace, "other")
    assert after is not None
    assert "progress" not in (after.get("status") or {})
    assert other["metadata"]["uid"] == after["metadata"]["uid"]

    # The namespace's default account was given the progress Role when the spec named none; it
    # is no longer: the upload's own account is the binding's only subject.
    default_dir = service_account_dir(cluster, namespace, tmp_path / "default-sa")
    results, _ = reports(api_env(cluster, namespace, "mine"), default_dir, 1)
    assert results == [False]


def test_no_cluster_credentials_means_log_only(tmp_path: Path) -> None:
    env = {
        "MODEL_UPLOAD_JOB_NAME": "x",
        "MODEL_UPLOAD_JOB_NAMESPACE": "y",
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": "6443",
    }
    check = (
        "import json, sys\nfrom pathlib import Path\n"
        "from model_registry_upload.status_report import StatusReporter\n"
        "env, path = json.load(sys.stdin), Path(sys.argv[1])\n"
        "print(json.dumps(StatusReporter.from_env(env, path) is None))"
    )

    def reporter_is_none(environ: dict[str, str]) -> bool:
        return bool(json.loads(run_python(check, str(tmp_path), stdin=json.dumps(environ))))

    assert reporter_is_none(env)  # no token file
    (tmp_path / "token").write_text("t")
    assert reporter_is_none({k: v for k, v in env.items() if k != "MODEL_UPLOAD_JOB_NAME"})
    assert not reporter_is_none(env)
