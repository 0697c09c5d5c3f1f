"""The operator's Prometheus series as a scrape shows them: the work queue's reconcile counter,
duration histogram and depth, the failure taxonomy's error counter, the gauges read from the
reconcilers' records, the upload byte counter; and the endpoint itself over plain HTTP and HTTPS
(its authentication against the real API server: tests/integration/test_metrics_auth.py)."""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from model_registry_operator.names import AVAILABLE
from model_registry_operator.observability import endpoint as endpoint_module
from model_registry_operator.observability import metrics, sources
from model_registry_operator.observability.endpoint import MetricsEndpoint
from model_registry_operator.reconcile.modeluploadjob import UploadState
from model_registry_operator.reconcile.queue import Key, Wanted, WorkQueue
from model_registry_operator.reconcile.steps import ProbeMemo, RegistryState, pack
from model_registry_operator.status.modelregistry import DatabaseState
from tests.backends.certs import CertificateAuthority
from tests.backends.process import free_port

from .test_work_queue import Record, Worker, until


def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
    return REGISTRY.get_sample_value(name, labels or {})


def scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_every_reconcile_is_counted_and_timed_by_kind() -> None:
    worker = Worker(busy=0.05)
    queue: WorkQueue[Record] = WorkQueue(worker, Record, resource="CountedKind", debounce=0.01)
    runs = sample("model_registry_operator_reconcile_total", {"kind": "CountedKind"}) or 0.0
    timed = sample("model_registry_operator_reconcile_duration_seconds_count", {"kind": "CountedKind"}) or 0.0
    total = sample("model_registry_operator_reconcile_duration_seconds_sum", {"kind": "CountedKind"}) or 0.0
    queue.schedule(("ns", "a"))
    queue.schedule(("ns", "b"))
    await until(lambda: len(worker.runs) == 2 and not any(worker.active.values()))
    await asyncio.sleep(0.01)
    assert sample("model_registry_operator_reconcile_total", {"kind": "CountedKind"}) == runs + 2
    assert sample("model_registry_operator_reconcile_duration_seconds_count", {"kind": "CountedKind"}) == timed + 2
    took = sample("model_registry_operator_reconcile_duration_seconds_sum", {"kind": "CountedKind"})
    assert took is not None
    assert took - total >= 0.1  # two runs of 50 ms each
    await queue.stop()


async def test_failures_are_counted_by_kind_and_category() -> None:
    worker = Worker(failing=True)
    queue: WorkQueue[Record] = WorkQueue(worker, Record, resource="FailingKind", debounce=0.01)
    labels = {"kind": "FailingKind", "category": "bug"}
    before = sample("model_registry_operator_reconcile_errors_total", labels) or 0.0
    queue.schedule(("ns", "a"))
    await until(lambda: (sample("model_registry_operator_reconcile_errors_total", labels) or 0.0) > before)
    assert sample("model_registry_operator_reconcile_errors_total", labels) == before + 1
    transient = {"kind": "FailingKind", "category": "transient"}
    assert (sample("model_registry_operator_reconcile_errors_total", transient) or 0.0) == 0.0
    queue.failed(("ns", "b"), None, ConnectionError("reset"))
    assert sample("model_registry_operator_reconcile_errors_total", transient) == 1.0
    await queue.stop()


async def test_the_queue_depth_is_the_runs_scheduled_and_not_started() -> None:
    worker = Worker()
    queue: WorkQueue[Record] = WorkQueue(worker, Record, resource="DeepKind", debounce=30.0)
    depth = {"kind": "DeepKind"}
    assert sample("model_registry_operator_work_queue_depth", depth) == 0.0
    for name in ("a", "b", "c"):
        queue.schedule(("ns", name))
    queue.schedule(("ns", "a"))  # merged into the run already scheduled
    assert sample("model_registry_operator_work_queue_depth", depth) == 3.0
    queue.schedule(("ns", "a"), urgent=True, delay=0)  # (merged: still waiting out the debounce)
    queue.forget(("ns", "b"))
    assert sample("model_registry_operator_work_queue_depth", depth) == 2.0
    await queue.stop()


def registry_state(available: str | None, reason: str = "", database: str | None = None) -> RegistryState:
    state = RegistryState()
    conditions = [{"type": AVAILABLE, "status": available, "reason": reason}] if available else []
    state.status = pack({"conditions": [*conditions, {"type": "Degraded", "status": "False"}]})
    if database is not None:
        state.probe = ProbeMemo("k", 0.0, DatabaseState("True" if database == "Connected" else "False", database, ""))
    return state


async def test_registries_databases_and_uploads_are_counted_from_the_reconcilers_records() -> None:
    async def nothing(key: Key, wanted: Wanted) -> None:
        return None

    registries: WorkQueue[RegistryState] = WorkQueue(nothing, RegistryState, resource="R", debounce=1)
    uploads: WorkQueue[UploadState] = WorkQueue(nothing, UploadState, resource="U", debounce=1)
    for name, state in {
        "a": registry_state("True", "DeploymentAvailable", "Connected"),
        "b": registry_state("True", "DeploymentAvailable", "Connected"),
        "c": registry_state("False", "ConfigurationError"),
        "d": registry_state("False", "DeploymentUnavailable", "Unreachable"),
        "e": registry_state(None),  # no Available condition written yet: not counted
    }.items():
        registries._slot(("ns", name)).state = state
    for name, phase in {"u1": "Running", "u2": "Failed", "u3": "Failed", "u4": ""}.items():
        uploads.state(("ns", name)).phase = phase
    sources.observe(registries, uploads)
    text = collect()
    registries_gauge = "model_registry_operator_model_registries"
    assert text[(registries_gauge, (("available", "True"), ("reason", "DeploymentAvailable")))] == 2
    assert text[(registries_gauge, (("available", "False"), ("reason", "ConfigurationError")))] == 1
    assert text[(registries_gauge, (("available", "False"), ("reason", "DeploymentUnavailable")))] == 1
    assert sum(v for (name, _), v in text.items() if name == registries_gauge) == 4
    assert text[("model_registry_operator_model_registry_database_probes", (("reason", "Connected"),))] == 2
    assert text[("model_registry_operator_model_registry_database_probes", (("reason", "Unreachable"),))] == 1
    assert text[("model_registry_operator_model_upload_jobs", (("phase", "Failed"),))] == 2
    assert text[("model_registry_operator_model_upload_jobs", (("phase", "Running"),))] == 1

    registries.forget(("ns", "a"))  # a registry gone is gone from the gauges
    uploads.forget(("ns", "u1"))
    text = collect()
    assert text[(registries_gauge, (("available", "True"), ("reason", "DeploymentAvailable")))] == 1
    assert ("model_registry_operator_model_upload_jobs", (("phase", "Running"),)) not in text


def collect() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return scraped(generate_latest(REGISTRY).decode())


def test_upload_bytes_count_what_was_transferred_since_the_last_look() -> None:
    before = sample("model_registry_operator_upload_bytes_total") or 0.0

    def counted() -> float:
        return (sample("model_registry_operator_upload_bytes_total") or 0.0) - before

    mark = metrics.count_upload_bytes(None, None)  # a new upload, nothing transferred yet
    assert mark == 0
    mark = metrics.count_upload_bytes(mark, 1000)
    mark = metrics.count_upload_bytes(mark, 1500)
    assert counted() == 1500
    mark = metrics.count_upload_bytes(mark, None)  # a status without progress: nothing changes
    assert (mark, counted()) == (1500, 1500)
    mark = metrics.count_upload_bytes(mark, 200)  # a retried attempt started over
    assert (mark, counted()) == (200, 1700)
    # First seen with bytes already transferred: an operator restarted mid-upload does not count
    # again what its predecessor counted.
    assert metrics.count_upload_bytes(None, 10_000) == 10_000
    assert counted() == 1700


def fetch(url: str, context: ssl.SSLContext | None = None, token: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


async def test_plain_http_serves_every_series_and_the_process_metrics() -> None:
    port = free_port()
    endpoint = MetricsEndpoint("127.0.0.1", port, None, secure=False)
    await endpoint.start()
    try:
        status, content_type, text = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/metrics")
    finally:
        await endpoint.stop()
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    names = {name for name, _ in scraped(text)}
    for name in (
        "model_registry_operator_reconcile_total",
        "model_registry_operator_work_queue_depth",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    ):
        assert name in names, name
    assert "# TYPE model_registry_operator_reconcile_duration_seconds histogram" in text
    assert "# TYPE model_registry_operator_upload_bytes_total counter" in text


async def test_https_with_a_self_signed_certificate_and_no_token_is_401() -> None:
    from model_registry_operator.observability.auth import Authorizer

    port = free_port()
    # The authorizer's API client is never reached: a request without a token is refused first.
    endpoint = MetricsEndpoint("127.0.0.1", port, Authorizer(None), secure=True)  # type: ignore[arg-type]
    await endpoint.start()
    try:
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            await asyncio.to_thread(fetch, f"https://127.0.0.1:{port}/metrics")  # self-signed: not trusted
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        status, _, text = await asyncio.to_thread(fetch, f"https://127.0.0.1:{port}/metrics", insecure)
        with pytest.raises(ConnectionError):  # no plain HTTP (the TLS server hangs up)
            await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/metrics")
    finally:
        await endpoint.stop()
    assert status == 401
    assert "bearer token" in text


async def test_a_rotated_certificate_is_served_to_new_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoint_module, "CERT_CHECK_SECONDS", 0.1)
    first, second = CertificateAuthority("first CA"), CertificateAuthority("second CA")
    first.issue_server().write(tmp_path, "tls")
    port = free_port()
    endpoint = MetricsEndpoint(
        "127.0.0.1", port, None, secure=True, cert_file=tmp_path / "tls.crt", key_file=tmp_path / "tls.key"
    )
    url = f"https://127.0.0.1:{port}/metrics"
    await endpoint.start()
    try:
        status, _, _ = await asyncio.to_thread(fetch, url, ssl.create_default_context(cadata=first.cert_pem))
        assert status == 200
        second.issue_server().write(tmp_path, "tls")  # what cert-manager does to the mounted Secret

        async def served_by_second() -> bool:
            try:
                await asyncio.to_thread(fetch, url, ssl.create_default_context(cadata=second.cert_pem))
            except urllib.error.URLError:
                return False
            return True

        for _ in range(50):
            if await served_by_second():
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the new certificate was not served")
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            await asyncio.to_thread(fetch, url, ssl.create_default_context(cadata=first.cert_pem))
    finally:
        await endpoint.stop()
