"""The metrics endpoint of the operator running as a process, as Prometheus sees it: HTTPS with
a certificate from --metrics-cert-dir, the bearer token of a ServiceAccount bound to the
metrics-reader ClusterRole of config/rbac (TokenReview + SubjectAccessReview by the real API
server), and series that follow registries and uploads as they come and go; its log in
--log-format json."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from model_registry_devcluster.simnode import SimulatedNode
from tests.backends.certs import CertificateAuthority
from tests.backends.databases import PostgresServer
from tests.backends.process import free_port

from .conftest import ROOT, OperatorProcess
from .kube import MR, Cluster, wait_for
from .uploads import MUJ, s3_to_oci_spec, secrets, upload, upload_status

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def serving_certificate(directory: Path) -> ssl.SSLContext:
    """``tls.crt`` / ``tls.key`` for 127.0.0.1 in ``directory``; a client context trusting their CA."""
    ca = CertificateAuthority("metrics test CA")
    ca.issue_server().write(directory, "tls")
    return ssl.create_default_context(cadata=ca.cert_pem)


@dataclass
class Endpoint:
    url: str
    context: ssl.SSLContext
    operator: OperatorProcess

    def get(self, token: str | None) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        request = urllib.request.Request(self.url, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=15, context=self.context) as response:  # noqa: S310
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def scrape(self, token: str) -> Samples:
        status, text = self.get(token)
        assert status == 200, text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


@pytest.fixture(scope="module")
def endpoint(operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """The session's operator, restarted with its metrics endpoint on (and JSON logs) for this module."""
    certs = tmp_path_factory.mktemp("metrics-certs")
    trusting = serving_certificate(certs)
    port = free_port()
    operator.stop()
    try:
        operator.start(
            tmp_path_factory.mktemp("operator-metrics"),
            {
                "METRICS_BIND_ADDRESS": f"127.0.0.1:{port}",
                "METRICS_CERT_DIR": str(certs),
                "LOG_FORMAT": "json",
            },
        )
        yield Endpoint(f"https://127.0.0.1:{port}/metrics", trusting, operator)
    finally:
        operator.stop()
        operator.start(tmp_path_factory.mktemp("operator"))


@dataclass
class Scrapers:
    allowed: str  # a token of a ServiceAccount bound to metrics-reader
    refused: str  # a token of a ServiceAccount without it


@pytest.fixture(scope="module")
def scrapers(cluster: Cluster) -> Iterator[Scrapers]:
    """Two ServiceAccounts, one bound to config/rbac's metrics-reader ClusterRole (as written,
    under a name of its own: the cluster is shared)."""
    suffix = uuid.uuid4().hex[:6]
    namespace, role = f"scrapers-{suffix}", f"metrics-reader-{suffix}"
    cluster.create_namespace(namespace)
    reader = yaml.safe_load((ROOT / "config" / "rbac" / "metrics_reader_role.yaml").read_text())
    reader["metadata"]["name"] = role
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": namespace}],
    }
    accounts = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
        for name in ("prometheus", "nosy")
    ]
    cluster.apply_yaml(yaml.safe_dump_all([reader, binding, *accounts]), namespace)

    def token(account: str) -> str:
        return cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()

    try:
        yield Scrapers(token("prometheus"), token("nosy"))
    finally:
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", role, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_an_authorised_service_account_scrapes_and_everyone_else_is_refused(
    endpoint: Endpoint, scrapers: Scrapers
) -> None:
    status, text = endpoint.get(scrapers.allowed)
    assert status == 200, text
    assert "model_registry_operator_reconcile_total" in text
    assert "process_resident_memory_bytes" in text

    status, text = endpoint.get(None)
    assert (status, text.strip()) == (401, "Unauthorized: a bearer token is required")
    status, text = endpoint.get("not-a-token")
    assert (status, text.strip()) == (401, "Unauthorized: the token was not accepted")
    status, text = endpoint.get(scrapers.refused)
    assert status == 403
    assert "system:serviceaccount:" in text
    assert ":nosy" in text
    assert "/metrics" in text
    status, _ = endpoint.get(scrapers.allowed)  # (again: from the cache)
    assert status == 200

    # Only the certificate of --metrics-cert-dir is served, and only over TLS.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(endpoint.url, timeout=15, context=ssl.create_default_context())  # noqa: S310
    with pytest.raises(ConnectionError):
        urllib.request.urlopen(endpoint.url.replace("https:", "http:"), timeout=15)  # noqa: S310
    assert scrapers.allowed not in endpoint.operator.text()  # no token in the log


def registries_by_availability(cluster: Cluster) -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = Counter()
    for mr in cluster.list(MR, None):
        for cond in (mr.get("status") or {}).get("conditions") or []:
            if cond["type"] == "Available":
                counts[(cond["status"], cond["reason"])] += 1
    return dict(counts)


def gauge(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], int]:
    """A gauge's non-zero samples by their label values (in the order of ``labels``)."""
    out = {}
    for (sample, pairs), value in samples.items():
        if sample == name and value:
            got = dict(pairs)
            out[tuple(got[label] for label in labels)] = int(value)
    return out


def database_reasons(cluster: Cluster) -> dict[tuple[str], int]:
    counts: Counter[tuple[str]] = Counter()
    for mr in cluster.list(MR, None):
        for cond in (mr.get("status") or {}).get("conditions") or []:
            if cond["type"] == "DatabaseAvailable":
                counts[(cond["reason"],)] += 1
    return dict(counts)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def test_the_series_follow_registries_and_uploads_as_they_come_and_go(
    cluster: Cluster,
    endpoint: Endpoint,
    scrapers: Scrapers,
    namespace: str,
    postgres: PostgresServer,
    sim_node: SimulatedNode,
) -> None:
    def matches_cluster() -> Samples | None:
        """A scrape whose registry and database gauges say what the ModelRegistries' conditions say."""
        samples = endpoint.scrape(scrapers.allowed)
        ok = gauge(samples, "model_registry_operator_model_registries", "available", "reason") == (
            registries_by_availability(cluster)
        ) and gauge(samples, "model_registry_operator_model_registry_database_probes", "reason") == (
            database_reasons(cluster)
        )
        return samples if ok else None

    before = wait_for(matches_cluster, timeout=60, interval=0.5, what="the gauges at the start")
    available = ("True", "DeploymentAvailable")
    available_before = gauge(before, "model_registry_operator_model_registries", "available", "reason").get(
        available, 0
    )
    connected_before = gauge(before, "model_registry_operator_model_registry_database_probes", "reason").get(
        ("Connected",), 0
    )

    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {}}
    secret["stringData"] = {"password": postgres.password}
    cluster.apply_yaml(yaml.safe_dump(secret), namespace)
    spec = {
        "rest": {},
        "postgres": {
            "host": postgres.host,
            "port": postgres.port,
            "database": postgres.database,
            "username": postgres.user,
            "passwordSecret": {"name": "db", "key": "password"},
        },
    }
    cluster.apply_yaml(
        yaml.safe_dump(
            {"apiVersion": MR.api_version, "kind": "ModelRegistry", "metadata": {"name": "watched"}, "spec": spec}
        ),
        namespace,
    )
    cluster.wait_condition(namespace, "watched", "Available", "True", "DeploymentAvailable")
    cluster.wait_condition(namespace, "watched", "DatabaseAvailable", "True", "Connected")
    up = wait_for(matches_cluster, timeout=60, interval=0.5, what="the gauges with the registry Available")
    assert gauge(up, "model_registry_operator_model_registries", "available", "reason")[available] == (
        available_before + 1
    )
    assert gauge(up, "model_registry_operator_model_registry_database_probes", "reason")[("Connected",)] == (
        connected_before + 1
    )
    kind = {"kind": "ModelRegistry"}
    assert value(up, "model_registry_operator_reconcile_total", **kind) > value(
        before, "model_registry_operator_reconcile_total", **kind
    )
    assert value(up, "model_registry_operator_reconcile_duration_seconds_count", **kind) > value(
        before, "model_registry_operator_reconcile_duration_seconds_count", **kind
    )

    # An upload into it that fails (its S3 endpoint refuses connections): the Failed phase is
    # counted, and so is the end.
    failed = {"phase": "Failed"}
    finished_before = value(up, "model_registry_operator_model_upload_jobs_finished_total", **failed)
    cluster.apply_yaml(secrets(namespace, "http://127.0.0.1:1", "127.0.0.1:1"), namespace)
    doomed = s3_to_oci_spec({"name": "watched"}, "127.0.0.1:1", "127.0.0.1:1/base:1", "m", "m", {"name": "m"})
    cluster.apply_yaml(upload("doomed", doomed), namespace)
    wait_for(lambda: upload_status(cluster, namespace, "doomed").get("phase") == "Failed", 180, 0.5, "upload Failed")
    ended = wait_for(
        lambda: (
            s
            if value(
                s := endpoint.scrape(scrapers.allowed),
                "model_registry_operator_model_upload_jobs_finished_total",
                **failed,
            )
            == finished_before + 1
            else None
        ),
        what="the failed upload counted",
    )
    assert gauge(ended, "model_registry_operator_model_upload_jobs", "phase")[("Failed",)] >= 1
    assert value(ended, "model_registry_operator_model_upload_jobs_finished_total", phase="Succeeded") == value(
        up, "model_registry_operator_model_upload_jobs_finished_total", phase="Succeeded"
    )
    cluster.kubectl("delete", "modeluploadjob", "doomed", "-n", namespace, "--wait=true", "--timeout=60s")

    # A wrong password in the database Secret: the probe says so, and so does the gauge.
    secret["stringData"] = {"password": "not-the-password"}
    cluster.apply_yaml(yaml.safe_dump(secret), namespace)
    cluster.wait_condition(namespace, "watched", "DatabaseAvailable", "False", "AuthenticationFailed")
    broken = wait_for(matches_cluster, timeout=60, interval=0.5, what="the gauges with the database refusing")
    assert (
        gauge(broken, "model_registry_operator_model_registry_database_probes", "reason")[("AuthenticationFailed",)]
        >= 1
    )

    # An upload waiting for a registry that does not exist: Pending, counted by phase.
    pending_spec = {
        "registry": {"name": "no-such-registry"},
        "intent": "create_model",
        "source": {"s3": {"key": "m", "credentialsSecret": "s3"}},
        "destination": {"oci": {"uri": "localhost:1/m:v1", "credentialsSecret": "oci"}},
        "model": {"registeredModel": {"name": "m"}, "modelVersion": {"name": "v1"}, "modelArtifact": {}},
    }
    phases_before = gauge(before, "model_registry_operator_model_upload_jobs", "phase")
    cluster.apply_yaml(upload("waiting", pending_spec), namespace)
    wait_for(
        lambda: ((cluster.get(MUJ, namespace, "waiting") or {}).get("status") or {}).get("phase") == "Pending",
        what="the upload Pending",
    )
    pending = wait_for(
        lambda: (
            s
            if gauge(s := endpoint.scrape(scrapers.allowed), "model_registry_operator_model_upload_jobs", "phase").get(
                ("Pending",), 0
            )
            == phases_before.get(("Pending",), 0) + 1
            else None
        ),
        what="the Pending upload counted",
    )
    assert value(pending, "model_registry_operator_reconcile_total", kind="ModelUploadJob") >= 1

    # Progress as an upload Pod reports it (the merge patch of status.progress its reporter
    # makes, written here by the test): the operator counts the bytes when it next looks (its
    # follow-up of unfinished uploads runs every RESYNC_INTERVAL_SECONDS, 10 s here).
    bytes_before = value(pending, "model_registry_operator_upload_bytes_total")
    for transferred in (1000, 5000):
        progress = {"stage": "Transferring", "bytesTransferred": transferred, "bytesTotal": 8000}
        cluster.patch(MUJ, namespace, "waiting", {"status": {"progress": progress}}, "status")
        wait_for(
            lambda n=transferred: (
                value(endpoint.scrape(scrapers.allowed), "model_registry_operator_upload_bytes_total")
                == bytes_before + n
            ),
            timeout=30,
            interval=0.5,
            what=f"{transferred} bytes counted",
        )
    cluster.kubectl("delete", "modeluploadjob", "waiting", "-n", namespace, "--wait=true", "--timeout=60s")

    # The registry gone: gone from the gauges too.
    cluster.kubectl("delete", "modelregistry", "watched", "-n", namespace, "--wait=true", "--timeout=60s")
    gone = wait_for(matches_cluster, timeout=60, interval=0.5, what="the gauges with the registry gone")
    assert gauge(gone, "model_registry_operator_model_registries", "available", "reason").get(available, 0) == (
        available_before
    )
    assert gauge(gone, "model_registry_operator_model_upload_jobs", "phase").get(("Pending",), 0) == (
        phases_before.get(("Pending",), 0)
    )
    for queue in ("ModelRegistry", "ModelUploadJob"):  # the queues' depths are exported (at 0 or more)
        assert ("model_registry_operator_work_queue_depth", (("kind", queue),)) in gone


def test_the_log_is_one_json_object_per_line(endpoint: Endpoint) -> None:
    lines = [line for line in endpoint.operator.text().splitlines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        record = json.loads(line)  # every line, kopf's included
        assert {"timestamp", "level", "logger", "message"} <= record.keys(), line
        records.append(record)
    assert any(
        r["logger"] == "model_registry_operator.observability.endpoint"
        and "serving metrics at https://" in r["message"]
        for r in records
    )
