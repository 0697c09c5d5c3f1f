"""Kubelet-style probes of process containers (model_registry_devcluster/probes.py), against real servers on loopback.

No cluster needed: the handlers probe real HTTP / TCP servers bound to a loopback address other
than 127.0.0.1 (as a Pod IP is), the prober runs its real worker threads with sub-second timings,
and exec probes enter the mount namespace of a real ``unshare`` process.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from model_registry_devcluster.probes import (
    LIVENESS,
    READINESS,
    STARTUP,
    ContainerProber,
    Probe,
    ProbeResult,
    ProbeTarget,
    ProbeTracker,
    container_ports,
    container_probes,
    run_probe,
)
from model_registry_devcluster.process_runner import RunningProcess
from model_registry_devcluster.testing import wait_for
from tests.backends.certs import CertificateAuthority

POD_IP = "127.77.0.9"  # a loopback address that is not 127.0.0.1, like a Pod IP of the simulated node


class Behaviour:
    """What the test server answers; changed by the tests while it runs."""

    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self.requests: list[tuple[str, dict[str, str]]] = []


class ProbedServer:
    def __init__(self, host: str = POD_IP, tls_dir: Path | None = None) -> None:
        self.behaviour = behaviour = Behaviour()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                behaviour.requests.append((self.path, dict(self.headers.items())))
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                body = f"status {behaviour.status}".encode()
                self.send_response(behaviour.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        if tls_dir is not None:
            ca = CertificateAuthority()
            cert, key = ca.issue_server("pod", ("pod",), (host,)).write(tls_dir, "server")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ProbedServer]:
    s = ProbedServer()
    yield s
    s.close()


def free_port(host: str = POD_IP) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def http_probe(kind: str, port: int | str, **timing: Any) -> Probe:  # noqa: ANN401
    return Probe(kind, "httpGet", {"path": "/healthz", "port": port}, **timing)


# ---------------------------------------------------------------------------------- parsing
def test_probes_are_read_from_the_container_spec_with_kubernetes_defaults() -> None:
    container = {
        "ports": [{"name": "http-api", "containerPort": 8080}, {"containerPort": 9090}],
        "readinessProbe": {"httpGet": {"path": "/readyz/health", "port": "http-api"}, "initialDelaySeconds": 5},
        "livenessProbe": {
            "tcpSocket": {"port": 8080},
            "periodSeconds": 7,
            "failureThreshold": 2,
            "terminationGracePeriodSeconds": 4,
        },
        "startupProbe": {"exec": {"command": ["true"]}, "timeoutSeconds": 3, "successThreshold": 1},
    }
    probes = container_probes(container)
    assert [(p.kind, p.handler) for p in probes] == [(STARTUP, "exec"), (LIVENESS, "tcpSocket"), (READINESS, "httpGet")]
    startup, liveness, readiness = probes
    assert (startup.period, startup.timeout, startup.failure_threshold, startup.initial_delay) == (10, 3, 3, 0)
    assert (liveness.period, liveness.failure_threshold, liveness.termination_grace) == (7, 2, 4)
    assert (readiness.initial_delay, readiness.success_threshold, readiness.action["port"]) == (5, 1, "http-api")
    assert container_ports(container) == {"http-api": 8080}
    # grpc probes are not supported: ignored, as if absent; no probes at all is an empty list.
    assert container_probes({"readinessProbe": {"grpc": {"port": 9000}}}) == []
    assert container_probes({}) == []


# ---------------------------------------------------------------------------------- handlers
def test_http_get_defaults_to_the_pod_ip_and_resolves_named_ports(server: ProbedServer) -> None:
    target = ProbeTarget(POD_IP, {"http-api": server.port})
    probe = Probe(
        READINESS,
        "httpGet",
        {"path": "healthz", "port": "http-api", "httpHeaders": [{"name": "X-Probe", "value": "yes"}]},
    )
    assert run_probe(probe, target) == ProbeResult(True, "status 200")
    path, headers = server.behaviour.requests[-1]
    assert path == "/healthz"
    assert (headers["X-Probe"], headers["User-Agent"]) == ("yes", "kube-probe/simulated")
    assert headers["Host"] == f"{POD_IP}:{server.port}"
    # Numbered port (also as a string), explicit host.
    assert run_probe(http_probe(READINESS, server.port), target).success
    assert run_probe(http_probe(READINESS, str(server.port)), target).success
    elsewhere = Probe(READINESS, "httpGet", {"host": POD_IP, "path": "/", "port": server.port})
    assert run_probe(elsewhere, ProbeTarget("127.77.0.10", {})).success
    # Nothing listens on 127.0.0.1 at that port: the default host really is the Pod IP.
    assert not run_probe(http_probe(READINESS, server.port), ProbeTarget("127.0.0.1", {})).success


def test_http_get_status_codes_timeouts_and_unknown_ports(server: ProbedServer) -> None:
    target = ProbeTarget(POD_IP, {"http-api": server.port})
    probe = http_probe(READINESS, "http-api", timeout=0.3)
    for status, ok in ((204, True), (302, True), (399, True), (400, False), (500, False), (503, False)):
        server.behaviour.status = status
        assert run_probe(probe, target).success is ok, status
    server.behaviour.status = 503
    assert run_probe(probe, target).message == "HTTP probe failed with statuscode: 503 status 503"
    server.behaviour.status, server.behaviour.delay = 200, 1.0
    started = time.monotonic()
    result = run_probe(probe, target)
    assert not result.success
    assert "timeout after 0.3s" in result.message
    assert time.monotonic() - started < 0.9
    server.behaviour.delay = 0.0
    assert run_probe(http_probe(READINESS, "metrics"), target) == ProbeResult(
        False, "port 'metrics' is not a port of the container"
    )
    refused = run_probe(http_probe(READINESS, free_port()), target)
    assert not refused.success
    assert "refused" in refused.message.lower()


def test_http_get_over_https_skips_certificate_verification(tmp_path: Path) -> None:
    server = ProbedServer(tls_dir=tmp_path)
    try:
        probe = Probe(READINESS, "httpGet", {"path": "/", "port": server.port, "scheme": "HTTPS"})
        assert run_probe(probe, ProbeTarget(POD_IP, {})).success
        plain = Probe(READINESS, "httpGet", {"path": "/", "port": server.port})
        assert not run_probe(plain, ProbeTarget(POD_IP, {})).success
    finally:
        server.close()


def test_tcp_socket_probe() -> None:
    with socket.socket() as listener:
        listener.bind((POD_IP, 0))
        listener.listen()
        port = listener.getsockname()[1]
        target = ProbeTarget(POD_IP, {"db": port})
        assert run_probe(Probe(LIVENESS, "tcpSocket", {"port": "db"}), target).success
        assert run_probe(Probe(LIVENESS, "tcpSocket", {"port": port, "host": POD_IP}), ProbeTarget("x", {})).success
    result = run_probe(Probe(LIVENESS, "tcpSocket", {"port": port}), target)
    assert not result.success
    assert result.message.startswith(f"dial tcp {POD_IP}:{port}: ")


# ---------------------------------------------------------------------------------- thresholds
def test_tracker_follows_the_kubelet_thresholds() -> None:
    probe = Probe(READINESS, "tcpSocket", {}, success_threshold=2, failure_threshold=3)
    t = ProbeTracker(probe, initial=False)
    ok, bad = ProbeResult(True), ProbeResult(False, "down")
    assert (t.observe(ok), t.result) == (False, False)  # one success of two
    assert (t.observe(ok), t.result) == (True, True)
    assert (t.observe(bad), t.observe(bad), t.result) == (False, False, True)
    assert (t.observe(ok), t.result) == (False, True)  # a success resets the failure run
    assert [t.observe(bad) for _ in range(3)] == [False, False, True]
    assert (t.result, t.message) == (False, "down")
    unknown = ProbeTracker(Probe(STARTUP, "exec", {}, failure_threshold=1), initial=None)
    assert (unknown.observe(bad), unknown.result) == (True, False)


# ---------------------------------------------------------------------------------- the prober
class Failures:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.event = threading.Event()

    def __call__(self, probe: Probe, message: str) -> None:
        self.calls.append((probe.kind, message))
        self.event.set()


def prober(probes: list[Probe], port: int, failures: Failures | None = None) -> ContainerProber:
    p = ContainerProber("ns/pod/c", probes, ProbeTarget(POD_IP, {"http": port}), failures or Failures())
    p.start()
    return p


def test_readiness_waits_for_the_initial_delay_then_follows_the_thresholds(server: ProbedServer) -> None:
    probe = http_probe(READINESS, "http", initial_delay=0.6, period=0.1, failure_threshold=3, success_threshold=2)
    p = prober([probe], server.port)
    try:
        started = time.monotonic()
        assert p.is_started()
        assert not p.is_ready()
        wait_for(p.is_ready, timeout=5, interval=0.02, message="ready")
        assert time.monotonic() - started >= 0.6 + 0.1  # the delay, then two successes in a row
        assert p.attempts[READINESS] >= 2
        server.behaviour.status = 500
        before = p.attempts[READINESS]
        wait_for(lambda: not p.is_ready(), timeout=5, interval=0.02, message="unready")
        assert p.attempts[READINESS] - before >= 3
        assert p.failures()[READINESS].startswith("HTTP probe failed with statuscode: 500")
        server.behaviour.status = 200
        wait_for(p.is_ready, timeout=5, interval=0.02, message="ready again")
    finally:
        p.stop()
        p.join(5)


def test_startup_probe_gates_readiness_and_liveness(server: ProbedServer) -> None:
    port = free_port()
    startup = Probe(STARTUP, "tcpSocket", {"port": port}, period=0.1, failure_threshold=1000)
    readiness = http_probe(READINESS, "http", period=0.1)
    liveness = Probe(LIVENESS, "httpGet", {"path": "/", "port": "http"}, period=0.1)
    p = ContainerProber(
        "ns/pod/c", [startup, readiness, liveness], ProbeTarget(POD_IP, {"http": server.port}), Failures()
    )
    p.start()
    try:
        time.sleep(0.5)
        assert not p.is_started()
        assert not p.is_ready()
        assert p.attempts[STARTUP] >= 3
        assert (p.attempts[READINESS], p.attempts[LIVENESS]) == (0, 0)
        assert not server.behaviour.requests
        with socket.socket() as listener:
            listener.bind((POD_IP, port))
            listener.listen()
            wait_for(p.is_ready, timeout=5, interval=0.02, message="started and ready")
        assert p.is_started()
        done = p.attempts[STARTUP]
        time.sleep(0.3)
        assert p.attempts[STARTUP] == done  # no more startup probing once it succeeded
        assert p.attempts[LIVENESS] >= 1
    finally:
        p.stop()
        p.join(5)


@pytest.mark.parametrize("kind", [LIVENESS, STARTUP])
def test_liveness_and_startup_failures_call_back_once(server: ProbedServer, kind: str) -> None:
    server.behaviour.status = 503
    failures = Failures()
    p = prober([http_probe(kind, "http", period=0.05, failure_threshold=3)], server.port, failures)
    try:
        assert failures.event.wait(5)
        time.sleep(0.3)
        assert failures.calls == [(kind, "HTTP probe failed with statuscode: 503 status 503")]
        assert p.attempts[kind] == 3
        assert not p.is_ready()
    finally:
        p.stop()
        p.join(5)


def test_stop_drops_a_probe_in_progress(server: ProbedServer) -> None:
    server.behaviour.delay = 1.0
    p = prober([http_probe(LIVENESS, "http", period=0.05, timeout=5, failure_threshold=1)], server.port)
    time.sleep(0.2)
    started = time.monotonic()
    p.stop()
    assert time.monotonic() - started < 0.1
    p.join(5)
    assert p.attempts[LIVENESS] == 0


# ---------------------------------------------------------------------------------- a real process
# (mount namespaces need root, as the process runner itself does)
@pytest.fixture
def namespaced_process(tmp_path: Path) -> Iterator[RunningProcess]:
    """``sleep`` in a mount namespace of its own, where a tmpfs at ``tmp_path/ns`` holds ``inside``."""
    mount = tmp_path / "ns"
    mount.mkdir()
    script = f"mount -t tmpfs none {mount} && touch {mount}/inside && exec sleep 60"
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script], start_new_session=True
    )
    (tmp_path / "root").mkdir()
    running = RunningProcess(
        proc,
        tmp_path / "root",
        tmp_path / "term",
        tmp_path / "log",
        "File",
        name="ns/pod/c",
        env={"PATH": os.environ["PATH"], "GREETING": "hi"},
        working_dir=str(mount),
        grace=1.0,
    )
    yield running
    running.stop()


def test_exec_probes_run_inside_the_container(namespaced_process: RunningProcess, tmp_path: Path) -> None:
    running = namespaced_process
    inside = Probe(READINESS, "exec", {"command": ["test", "-e", "inside"]}, period=0.1, timeout=2)
    wait_for(
        lambda: run_probe(inside, ProbeTarget(POD_IP, {}, running.exec)).success,
        timeout=5,
        message="tmpfs mounted in the container",
    )
    assert not (tmp_path / "ns" / "inside").exists()  # only the container's namespace has it
    env = Probe(READINESS, "exec", {"command": ["/bin/sh", "-c", 'test "$GREETING" = hi && pwd']}, timeout=2)
    assert run_probe(env, ProbeTarget(POD_IP, {}, running.exec)) == ProbeResult(True, str(tmp_path / "ns"))
    failing = Probe(READINESS, "exec", {"command": ["/bin/sh", "-c", "echo nope; exit 4"]}, timeout=2)
    assert run_probe(failing, ProbeTarget(POD_IP, {}, running.exec)) == ProbeResult(
        False, "command /bin/sh -c 'echo nope; exit 4' exited with 4: nope"
    )
    slow = Probe(READINESS, "exec", {"command": ["sleep", "5"]}, timeout=0.3)
    started = time.monotonic()
    assert run_probe(slow, ProbeTarget(POD_IP, {}, running.exec)) == ProbeResult(
        False, "command sleep 5 timed out after 0.3s"
    )
    assert time.monotonic() - started < 2


def test_a_failing_liveness_probe_stops_the_process(namespaced_process: RunningProcess) -> None:
    running = namespaced_process
    liveness = Probe(LIVENESS, "exec", {"command": ["test", "-e", "missing"]}, period=0.1, failure_threshold=2)
    running.start_probes([liveness], POD_IP, {})
    assert running.is_started()
    exit_ = wait_for(running.poll, timeout=10, message="process stopped by its liveness probe")
    assert exit_.exit_code == 128 + 15  # SIGTERM, as a runtime reports it
    assert running.killed_by == LIVENESS
    assert not running.is_ready()
