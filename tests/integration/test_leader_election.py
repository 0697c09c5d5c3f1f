"""Two operator replicas with leader election: one acts, the other waits and takes over.

Each replica reaches the API server through its own :class:`FaultProxy` (plain HTTP) in front of
one ``kubectl proxy`` (which holds the credentials and speaks TLS to the API server), so every
request a replica makes is seen with the time it reached the API server, and one replica's
connection can be cut. A write is a POST / PUT / PATCH / DELETE other than on the Lease itself.

The Lease timing is shortened (lease 10 s, renew deadline 6 s, retry 1 s) to keep the tests
short; the rules are the same as with the defaults.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from model_registry_devcluster.controlplane import ControlPlane
from model_registry_operator.settings import LEADER_ELECTION_ID
from tests.backends.faults import Fault, FaultProxy, Request

from .conftest import OperatorProcess
from .kube import MR, Cluster, wait_for

pytestmark = pytest.mark.integration

LEASE = {"LEASE_DURATION": 10.0, "RENEW_DEADLINE": 6.0, "RETRY_PERIOD": 1.0}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Sent:
    at: float
    """Wall-clock time the request head reached the proxy (and went on to the API server)."""
    method: str
    path: str

    @property
    def write(self) -> bool:
        return self.method in WRITES and "/leases" not in self.path


@dataclass
class Recorder:
    """The proxy's one fault: records each request's time; while ``cut``, refuses it instead."""

    cut: bool = False
    sent: list[Sent] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, req: Request) -> bool:
        with self.lock:
            if self.cut:
                self.refused += 1
                return True
            self.sent.append(Sent(time.time(), req.method, req.path))
            return False

    def writes(self) -> list[Sent]:
        with self.lock:
            return [s for s in self.sent if s.write]


class Replica:
    """One operator process with leader election, behind its own fault proxy."""

    def __init__(self, name: str, api_port: int, namespace: str, workdir: Path) -> None:
        self.name = name
        self.recorder = Recorder()
        self.proxy = FaultProxy(api_port)
        self.proxy.start()
        self.proxy.add(Fault("refuse", match=self.recorder, times=sys.maxsize))
        kubeconfig = workdir / f"kubeconfig-{name}"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: c, cluster: {{server: '{self.proxy.url}'}}}}]\n"
            "users: [{name: u, user: {}}]\n"
            "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
        )
        env = {
            "LEADER_ELECT": "true",
            "LEADER_ELECTION_NAMESPACE": namespace,
            "WATCH_NAMESPACE": namespace,
            **{f"LEADER_ELECTION_{k}": str(v) for k, v in LEASE.items()},
        }
        (workdir / name).mkdir()
        self.operator = OperatorProcess(kubeconfig, workdir / name, env)

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.operator.health_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 - a loopback test URL
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    @property
    def leading(self) -> bool:
        return "[+]leader ok (leader)" in self.get("/readyz")[1]

    def cut(self) -> None:
        self.recorder.cut = True
        self.proxy.drop_connections()

    def stop(self) -> None:
        if self.operator.alive:
            self.operator.stop()
        else:
            self.operator.log.close()
        self.proxy.stop()


@pytest.fixture(scope="module")
def api_port(control_plane: ControlPlane) -> Iterator[int]:
    """``kubectl proxy``: the API server over plain HTTP on loopback, with the admin's credentials."""
    proc = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(control_plane.kubeconfig), "proxy", "--port=0", "--address=127.0.0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "Starting to serve on 127.0.0.1:PORT"
    try:
        yield int(line.strip().rpartition(":")[2])
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def only_these_operators(operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite's own operator (no leader election) is stopped here: it would act as a third."""
    operator.stop()
    yield
    operator.start(tmp_path_factory.mktemp("operator-after-leader-election"))


@pytest.fixture
def pair(
    cluster: Cluster, api_port: int, only_these_operators: None, tmp_path: Path
) -> Iterator[tuple[str, Replica, Replica]]:
    """A namespace, replica ``a`` (the leader, started first) and replica ``b`` (the standby)."""
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(namespace)
    replicas: list[Replica] = []
    try:
        a = Replica("a", api_port, namespace, tmp_path)
        replicas.append(a)
        wait_for(lambda: a.leading, timeout=30, what="replica a leading")
        b = Replica("b", api_port, namespace, tmp_path)
        replicas.append(b)
        yield namespace, a, b
        cluster.kubectl(
            "delete", "modelregistries", "--all", "-n", namespace, "--wait=true", "--timeout=60s", check=False
        )
    finally:
        for replica in replicas:  # shown when the test failed
            print(f"--- replica {replica.name} log tail ---\n{replica.operator.tail(30)}")
            replica.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def create_registry(cluster: Cluster, namespace: str, name: str) -> None:
    cluster.kube.request_sync(
        "POST",
        MR.path(namespace),
        body={
            "apiVersion": "modelregistry.opendatahub.io/v1beta1",
            "kind": "ModelRegistry",
            "metadata": {"name": name},
            # A closed loopback port: the database probe answers at once.
            "spec": {"rest": {}, "postgres": {"host": "127.0.0.1", "port": 1, "database": "d", "username": "u"}},
        },
    )


def all_available(cluster: Cluster, namespace: str, count: int) -> bool:
    items = cluster.list(MR, namespace)
    return len(items) == count and all(
        any(c["type"] == "Available" and c["status"] == "True" for c in (m.get("status") or {}).get("conditions", []))
        for m in items
    )


def lease(cluster: Cluster, namespace: str) -> dict[str, object]:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEADER_ELECTION_ID}"
    spec: dict[str, object] = cluster.kube.request_sync("GET", path)["spec"]
    return spec


@contextlib.contextmanager
def burst(cluster: Cluster, namespace: str, count: int, interval: float) -> Iterator[threading.Thread]:
    """Create ``count`` registries, one each ``interval`` seconds, in the background."""

    def create() -> None:
        for i in range(count):
            create_registry(cluster, namespace, f"r{i}")
            time.sleep(interval)

    thread = threading.Thread(target=create, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.join(60)


def test_only_the_leader_acts(cluster: Cluster, pair: tuple[str, Replica, Replica]) -> None:
    namespace, a, b = pair
    status, body = b.get("/readyz")
    # The standby is ready (a rollout of two replicas waits for it) and says it is the standby.
    assert status == 200, body
    assert "[+]leader ok (standby)" in body
    assert "[+]apiserver ok" in body
    status, body = a.get("/readyz")
    assert status == 200, body
    assert "[+]watches ok" in body
    assert a.get("/healthz") == (200, "ok")
    assert b.get("/healthz") == (200, "ok")
    for i in range(3):
        create_registry(cluster, namespace, f"r{i}")
    wait_for(lambda: all_available(cluster, namespace, 3), timeout=90, interval=1, what="3 registries available")
    assert a.recorder.writes(), "the leader wrote nothing"
    # The standby read the Lease and the API server's /readyz, and nothing else: no watch, no write.
    assert {(s.method, s.path.split("?")[0]) for s in b.recorder.sent} <= {
        ("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEADER_ELECTION_ID}"),
        ("GET", "/readyz"),
    }
    assert lease(cluster, namespace)["holderIdentity"] in a.operator.text()


def test_sigkill_of_the_leader_mid_burst(cluster: Cluster, pair: tuple[str, Replica, Replica]) -> None:
    namespace, a, b = pair
    with burst(cluster, namespace, count=10, interval=0.4):
        wait_for(lambda: len(a.recorder.writes()) > 5, timeout=30, what="the leader writing")
        a.operator.process.kill()
        killed = time.monotonic()
        wait_for(lambda: b.leading, timeout=20, interval=0.2, what="the standby leading")
        took_over = time.monotonic() - killed
    assert took_over < 15, f"the standby took {took_over:.1f}s to take over"
    wait_for(lambda: all_available(cluster, namespace, 10), timeout=120, interval=1, what="10 registries available")
    assert max(s.at for s in a.recorder.writes()) < min(s.at for s in b.recorder.writes())


def test_leader_cut_from_the_api_server_stops_before_its_lease_can_be_taken(
    cluster: Cluster, pair: tuple[str, Replica, Replica]
) -> None:
    namespace, a, b = pair
    with burst(cluster, namespace, count=16, interval=0.5):
        wait_for(lambda: len(a.recorder.writes()) > 5, timeout=30, what="the leader writing")
        a.cut()
        cut = time.time()
        # Cut off, a is no longer ready (but still live until it gives up).
        status, body = wait_for(lambda: (r := a.get("/readyz"))[0] == 500 and r, timeout=5, what="a not ready")
        assert "[-]apiserver failed: the API server is not reachable" in body
        assert a.get("/healthz") == (200, "ok")
        wait_for(lambda: b.leading, timeout=30, interval=0.2, what="the standby leading")
        a_alive_at_takeover = a.operator.alive
        a.recorder.cut = False  # the network heals: a must have nothing left to write
    wait_for(lambda: all_available(cluster, namespace, 16), timeout=120, interval=1, what="16 registries available")
    a_writes, b_writes = a.recorder.writes(), b.recorder.writes()
    assert a.recorder.refused, "the cut refused nothing"
    # As the API server saw them: every write of a's came before the cut, every one of b's after.
    last_a, first_b = max(s.at for s in a_writes), min(s.at for s in b_writes)
    assert last_a < cut < first_b, f"a wrote last {last_a - cut:+.2f}s after the cut, b first {first_b - cut:+.2f}s"
    # a left by itself, within its renew deadline, before its Lease could be taken.
    assert not a_alive_at_takeover
    assert a.operator.process.returncode == 1
    assert "leader election lost" in a.operator.text()


def test_sigterm_releases_the_lease(cluster: Cluster, pair: tuple[str, Replica, Replica]) -> None:
    namespace, a, b = pair
    create_registry(cluster, namespace, "r0")
    wait_for(lambda: all_available(cluster, namespace, 1), timeout=60, interval=0.5, what="the registry available")
    a.operator.process.send_signal(signal.SIGTERM)
    terminated = time.monotonic()
    wait_for(lambda: b.leading, timeout=10, interval=0.1, what="the standby leading")
    took_over = time.monotonic() - terminated
    assert a.operator.process.wait(10) == 0
    assert "Released the leader election Lease" in a.operator.text()
    # One retry period (with its jitter) and a request, not the 10 s lease duration.
    assert took_over < 3, f"the standby took {took_over:.1f}s to take over"
    create_registry(cluster, namespace, "r1")
    wait_for(lambda: all_available(cluster, namespace, 2), timeout=60, interval=0.5, what="the new leader acting")
