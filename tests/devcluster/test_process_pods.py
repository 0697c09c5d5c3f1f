"""``sim-exec`` Pods on the simulated node: real probes, Service names and image content.

Every container here is a real process (a small Python HTTP server or client) started by the
node's process runner; probes hit it over loopback like a kubelet's would.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

from kubernetes import client

from model_registry_devcluster.testing import DevCluster, wait_for

CTL = "/var/run/simexec-test/ctl"

SERVER = r"""
import http.server, os, pathlib, sys
ctl, port = pathlib.Path(sys.argv[1]), int(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = ctl / "status"
        code = int(status.read_text()) if status.exists() else 200
        body = f"{os.environ['POD_NAME']} {self.path}".encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((os.environ["POD_IP"], port), Handler).serve_forever()
"""

CLIENT = r"""
import json, sys, time, urllib.request
port, names = sys.argv[1], sys.argv[2:]
deadline, answers, errors = time.monotonic() + 60, {}, {}
while len(answers) < len(names) and time.monotonic() < deadline:
    for name in names:
        if name not in answers:
            try:
                with urllib.request.urlopen(f"http://{name}:{port}/hello", timeout=2) as response:
                    answers[name] = response.read().decode()
            except OSError as exc:
                errors[name] = str(exc)
    time.sleep(0.2)
with open("/dev/termination-log", "w") as f:
    json.dump({"answers": answers, "errors": errors}, f)
sys.exit(0 if len(answers) == len(names) else 1)
"""

POD_ENV = [
    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
]


def free_port() -> int:
    """A port free on every address (the processes share the host network)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))  # noqa: S104
        port: int = s.getsockname()[1]
        return port


def server_pod(name: str, port: int, ctl: Path, **probes: Any) -> dict[str, Any]:  # noqa: ANN401
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "web",
                    "image": "localhost/sim-exec/probe-test:1",
                    "command": [sys.executable, "-c", SERVER, CTL, str(port)],
                    "env": POD_ENV,
                    "ports": [{"name": "http", "containerPort": port}],
                    "volumeMounts": [{"name": "ctl", "mountPath": CTL}],
                    **probes,
                }
            ],
            "volumes": [{"name": "ctl", "hostPath": {"path": str(ctl)}}],
        },
    }


def container_status(core: Any, namespace: str, name: str) -> Any:  # noqa: ANN401
    pod = core.read_namespaced_pod(name, namespace)
    return (pod.status.container_statuses or [None])[0]


def pod_ready(core: Any, namespace: str, name: str) -> bool:  # noqa: ANN401
    pod = core.read_namespaced_pod(name, namespace)
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def terminated(core: Any, namespace: str, name: str, timeout: float = 90) -> Any:  # noqa: ANN401
    def check() -> Any:  # noqa: ANN401
        pod = core.read_namespaced_pod(name, namespace)
        if pod.status.phase in ("Succeeded", "Failed"):
            return pod.status.container_statuses[0].state.terminated
        return None

    return wait_for(check, timeout=timeout, message=f"pod {name} terminated")


def test_probes_drive_readiness_and_restarts(api: Any, namespace: str, tmp_path: Path) -> None:  # noqa: ANN401
    """Startup (tcpSocket), readiness (httpGet on a named port of the Pod IP) and liveness (exec)."""
    core = client.CoreV1Api(api)
    port = free_port()
    probes = {
        "startupProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1, "failureThreshold": 30},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1},
        "livenessProbe": {
            "exec": {"command": ["/bin/sh", "-c", f"test ! -e {CTL}/die"]},
            "periodSeconds": 1,
            "failureThreshold": 2,
        },
    }
    (tmp_path / "status").write_text("503")  # up, but not ready yet
    core.create_namespaced_pod(namespace, server_pod("web", port, tmp_path, **probes))
    wait_for(
        lambda: (s := container_status(core, namespace, "web")) is not None and s.started,
        timeout=60,
        message="container started (startup probe passed)",
    )
    status = container_status(core, namespace, "web")
    assert (status.ready, status.restart_count) == (False, 0)
    assert not pod_ready(core, namespace, "web")

    (tmp_path / "status").unlink()
    wait_for(lambda: pod_ready(core, namespace, "web"), timeout=30, message="Ready after /ready answers 200")

    (tmp_path / "status").write_text("500")
    wait_for(lambda: not pod_ready(core, namespace, "web"), timeout=30, message="unready on 500")
    status = container_status(core, namespace, "web")
    assert ("running" if status.state.running else "other", status.restart_count) == ("running", 0)
    (tmp_path / "status").unlink()
    wait_for(lambda: pod_ready(core, namespace, "web"), timeout=30, message="Ready again")

    (tmp_path / "die").write_text("")
    wait_for(
        lambda: container_status(core, namespace, "web").restart_count >= 1,
        timeout=60,
        message="restarted after failing its liveness probe",
    )
    (tmp_path / "die").unlink()
    wait_for(lambda: pod_ready(core, namespace, "web"), timeout=60, message="Ready after the restart")
    status = container_status(core, namespace, "web")
    assert status.last_state.terminated.exit_code == 128 + 15  # stopped with SIGTERM


def test_service_names_resolve_to_a_ready_endpoint(
    api: Any,  # noqa: ANN401
    namespace: str,
    tmp_path: Path,
) -> None:
    """A client started before the Service has a ready endpoint reaches it by every DNS name."""
    core = client.CoreV1Api(api)
    port = free_port()
    names = ["web", f"web.{namespace}", f"web.{namespace}.svc", f"web.{namespace}.svc.cluster.local"]
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "client"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "client",
                        "image": "localhost/sim-exec/probe-test:1",
                        "command": [sys.executable, "-c", CLIENT, str(port), *names],
                    }
                ],
            },
        },
    )
    wait_for(lambda: container_status(core, namespace, "client").state.running, message="client running")
    readiness = {"readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}}
    core.create_namespaced_pod(namespace, server_pod("web", port, tmp_path, **readiness))
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": port, "targetPort": "http"}]},
        },
    )
    term = terminated(core, namespace, "client")
    result = json.loads(term.message)
    assert term.exit_code == 0, result
    assert result["answers"] == dict.fromkeys(names, "web /hello")


def test_image_files_are_mounted_and_missing_commands_fail_to_start(
    dev_cluster: DevCluster,
    api: Any,  # noqa: ANN401
    namespace: str,
    tmp_path: Path,
) -> None:
    core = client.CoreV1Api(api)
    script = tmp_path / "hello"
    script.write_text(
        "#!/bin/sh\n"
        "cat /var/run/simexec-test/image/data/greeting > /dev/termination-log\n"
        "if touch /var/run/simexec-test/image/data/new 2>/dev/null; then exit 9; fi\n"
    )
    script.chmod(0o755)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "greeting").write_text("hello from the image")
    image = f"localhost/sim-exec/image-test-{namespace}"
    dev_cluster.node.process_runner.provide_image_files(
        image,  # a repository: every tag of it
        {"/var/run/simexec-test/image/bin/hello": script, "/var/run/simexec-test/image/data": tmp_path / "data"},
    )

    def pod(name: str, image: str, command: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": image, "command": [command]}]},
        }

    core.create_namespaced_pod(namespace, pod("hello", f"{image}:v1", "/var/run/simexec-test/image/bin/hello"))
    term = terminated(core, namespace, "hello")
    assert (term.exit_code, term.message) == (0, "hello from the image")
    assert not (tmp_path / "data" / "new").exists()

    # Another image does not hold the file: the runtime cannot find the command.
    nope = "/var/run/simexec-test/nope"
    core.create_namespaced_pod(namespace, pod("other", "localhost/sim-exec/other:v1", nope))
    term = terminated(core, namespace, "other")
    assert (term.exit_code, term.reason) == (128, "StartError")
    assert term.message == f'exec: "{nope}": stat {nope}: no such file or directory'
    plain = tmp_path / "data" / "greeting"  # there, but not executable
    core.create_namespaced_pod(namespace, pod("plain", "localhost/sim-exec/other:v1", str(plain)))
    term = terminated(core, namespace, "plain")
    assert (term.exit_code, term.reason, term.message) == (128, "StartError", f'exec: "{plain}": permission denied')
