"""A reconcile past its time limit (RECONCILE_TIMEOUT_SECONDS) against the real API server: a
bug-class failure, reported as ReconcileError, its traceback (where it hung) logged once, counted,
and retried with growing delays rather than in a tight loop.

What hangs is real: the registry's database is a TCP server that accepts connections and never
answers, so the operator's live database probe waits (as it would for a database host that
stopped answering) longer than the reconcile may take.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import yaml

from model_registry_operator.kube import Kube, load_api_client
from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES
from model_registry_operator.reconcile import errors
from model_registry_operator.reconcile.modelregistry import RegistryReconciler
from model_registry_operator.settings import OperatorSettings

from .conftest import OperatorProcess
from .kube import MR, Cluster, wait_for

pytestmark = pytest.mark.integration

TIME_LIMIT = 1.0


class SilentServer:
    """Accepts TCP connections and never sends a byte; records when each one came."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.connected: list[float] = []
        self.clients: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.connected.append(time.monotonic())
            self.clients.append(client)

    def close(self) -> None:
        self.sock.close()
        for client in self.clients:
            client.close()


@pytest.fixture
def silent_database() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def reconciler(
    cluster: Cluster, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryReconciler]:
    """A reconciler in-process with a 1 s time limit (the operator is stopped meanwhile, so only
    this one reconciles)."""
    operator.stop()
    try:
        kube = Kube(load_api_client(str(cluster.kubeconfig)))
        settings = OperatorSettings(RECONCILE_TIMEOUT_SECONDS=TIME_LIMIT, DATABASE_PROBE_TIMEOUT=10)
        assert settings.reconcile_timeout == TIME_LIMIT
        yield RegistryReconciler(kube, settings, lambda: PLAIN_KUBERNETES)
    finally:
        operator.start(tmp_path_factory.mktemp("operator-restarted"))


async def test_a_reconcile_past_its_time_limit_is_logged_once_and_retried_with_growing_delays(
    cluster: Cluster,
    namespace: str,
    reconciler: RegistryReconciler,
    silent_database: SilentServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "pw-1234"}}
    cluster.apply_yaml(yaml.safe_dump(secret), namespace)
    spec = {
        "rest": {},
        "postgres": {
            "host": "127.0.0.1",
            "port": silent_database.port,
            "database": "mr",
            "username": "mr",
            "passwordSecret": {"name": "db", "key": "password"},
        },
    }
    body = {"apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry"}
    cluster.apply_yaml(yaml.safe_dump({**body, "metadata": {"name": "hung"}, "spec": spec}), namespace)
    monkeypatch.setattr(errors, "BACKOFF_BASE_SECONDS", 0.5)
    monkeypatch.setattr(errors, "BACKOFF_CAP_SECONDS", 2.0)
    caplog.set_level(logging.DEBUG, logger="model_registry_operator")
    bugs_before = errors.FAILURES.get("ModelRegistry", errors.BUG)

    registry = cluster.get(MR, namespace, "hung")
    assert registry is not None
    started = time.monotonic()
    reconciler.registry_event(None, registry)  # as the watch delivers it
    # Every attempt probes the database once: the silent server counts the attempts.
    await asyncio.to_thread(wait_for, lambda: len(silent_database.connected) >= 6, 60, what="six attempts")
    elapsed = time.monotonic() - started

    available = cluster.condition(namespace, "hung", "Available")
    assert available is not None
    assert (available["status"], available["reason"]) == ("False", "ReconcileError"), available
    assert "HandlerTimeout" in available["message"]
    assert f"took longer than {TIME_LIMIT:g} s (RECONCILE_TIMEOUT_SECONDS)" in available["message"]
    assert "retrying in" in available["message"]
    degraded = cluster.condition(namespace, "hung", "Degraded")
    assert degraded is not None
    assert (degraded["status"], degraded["reason"]) == ("True", "ReconcileError")

    tracebacks = [r for r in caplog.records if "Traceback (most recent call last)" in r.getMessage()]
    assert len(tracebacks) == 1, [r.getMessage()[:200] for r in caplog.records]
    assert tracebacks[0].levelno == logging.ERROR
    logged = tracebacks[0].getMessage()
    assert f"{namespace}/hung: reconcile failed (attempt 1)" in logged
    assert "HandlerTimeout" in logged
    assert "probe" in logged  # the traceback shows where it hung
    assert errors.FAILURES.get("ModelRegistry", errors.BUG) - bugs_before >= 5

    # An attempt probes after its applies and gives up 1 s after it started; the next one comes
    # after the delay: 0.5 s, 1 s, 2 s, then the cap (2 s). Not a tight loop.
    gaps = [b - a for a, b in zip(silent_database.connected, silent_database.connected[1:], strict=False)]
    assert gaps[0] >= 0.5 + TIME_LIMIT / 2, gaps
    assert gaps[1] >= gaps[0] + 0.3, gaps
    assert gaps[2] >= gaps[1] + 0.3, gaps
    assert all(2.0 + TIME_LIMIT / 2 <= g < 2.0 + TIME_LIMIT + 1.5 for g in gaps[3:]), gaps
    assert len(silent_database.connected) <= 1 + elapsed / (0.5 + TIME_LIMIT / 2), gaps

    # A database that answers (here: a host the operator cannot resolve, so it is not probed)
    # and a spec change: the reconcile ends within its time limit again.
    cluster.kubectl(
        "patch", "-n", namespace, "mr/hung", "--type=merge", "-p", '{"spec":{"postgres":{"host":"db.invalid"}}}'
    )
    changed = cluster.get(MR, namespace, "hung")
    assert changed is not None
    reconciler.registry_event("MODIFIED", changed)

    def recovered() -> bool:
        cond = cluster.condition(namespace, "hung", "Available")
        return cond is not None and cond["reason"] != "ReconcileError"

    await asyncio.to_thread(wait_for, recovered, 20, what="the ReconcileError to go")
    assert reconciler.queue.peek((namespace, "hung")) is not None
    assert reconciler.queue.failing((namespace, "hung")) is None  # a success starts the backoff over

    # Its DELETED event drops everything kept about it.
    cluster.kubectl("delete", "-n", namespace, "mr/hung", "--wait=true")
    reconciler.registry_event("DELETED", changed)
    assert reconciler.queue.peek((namespace, "hung")) is None
    assert len(reconciler.queue) == 0
    await reconciler.stop()
