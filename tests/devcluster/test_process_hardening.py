"""What a process container's security context and its image's entrypoint mean on the simulated node.

``readOnlyRootFilesystem`` is enforced in the container's mount namespace (a write outside its
volumes fails with EROFS, although the process runs as root); a container without ``command``
runs the ENTRYPOINT / CMD its image declares, as a runtime does.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from kubernetes import client

from model_registry_devcluster.testing import DevCluster

from .test_process_runner import terminated

WRITES = r"""
set -u
result=""
try() { if (: > "$1") 2>/dev/null; then result="$result $2=rw"; rm -f "$1"; else result="$result $2=ro"; fi; }
try /var/run/simexec-ro/scratch/f scratch
try /var/run/simexec-ro/scratch/nested/f nested
try "/tmp/simexec-ro-$MARK" tmp
try "/simexec-ro-$MARK" root
try /dev/shm/simexec-ro-$MARK shm
try /var/run/simexec-ro/config/f config
grep -q "$HOSTNAME" /etc/hosts && result="$result hosts=ok"
printf '%s' "${result# }" > /dev/termination-log
"""


def pod(name: str, read_only: bool | None) -> dict[str, Any]:
    security: dict[str, Any] = {} if read_only is None else {"readOnlyRootFilesystem": read_only}
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "localhost/sim-exec/test:1",
                    "command": ["/bin/sh", "-c", WRITES],
                    "env": [{"name": "MARK", "value": uuid.uuid4().hex[:8]}],
                    "securityContext": security,
                    "volumeMounts": [
                        {"name": "scratch", "mountPath": "/var/run/simexec-ro/scratch"},
                        {"name": "nested", "mountPath": "/var/run/simexec-ro/scratch/nested"},
                        {"name": "config", "mountPath": "/var/run/simexec-ro/config", "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "nested", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "cfg"}},
            ],
        },
    }


def test_read_only_root_filesystem_leaves_only_the_volumes_writable(api: Any, namespace: str) -> None:  # noqa: ANN401
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"a": "b"}})
    core.create_namespaced_pod(namespace, pod("ro", True))
    term = terminated(core, namespace, "ro")
    assert term.exit_code == 0, term.message
    assert term.message == "scratch=rw nested=rw tmp=ro root=ro shm=rw config=ro hosts=ok"

    # Without it (or with false) the root filesystem, the host's here, stays writable.
    for name, setting in (("rw", False), ("unset", None)):
        core.create_namespaced_pod(namespace, pod(name, setting))
        term = terminated(core, namespace, name)
        assert term.exit_code == 0, term.message
        assert term.message == "scratch=rw nested=rw tmp=rw root=rw shm=rw config=ro hosts=ok"


def test_a_container_without_command_runs_its_image_entrypoint(
    dev_cluster: DevCluster,
    api: Any,  # noqa: ANN401
    namespace: str,
    tmp_path: Path,
) -> None:
    core = client.CoreV1Api(api)
    script = tmp_path / "entrypoint"
    script.write_text('#!/bin/sh\nprintf "%s|" "$@" > /dev/termination-log\n')
    script.chmod(0o755)
    image = f"localhost/sim-exec/entrypoint-{namespace}"
    runner = dev_cluster.node.process_runner
    runner.provide_image_files(image, {"/usr/local/bin/entrypoint": script})
    runner.provide_image_entrypoint(image, ["/usr/local/bin/entrypoint", "--from-entrypoint"], ["--from-cmd"])

    def run(name: str, image: str, **container: Any) -> Any:  # noqa: ANN401
        spec = {"restartPolicy": "Never", "containers": [{"name": "c", "image": image, **container}]}
        core.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": spec})
        return terminated(core, namespace, name)

    term = run("cmd", f"{image}:v1")
    assert (term.exit_code, term.message) == (0, "--from-entrypoint|--from-cmd|")
    term = run("args", f"{image}:v1", args=["--a", "b"])
    assert (term.exit_code, term.message) == (0, "--from-entrypoint|--a|b|")
    term = run("command", f"{image}:v1", command=["/usr/local/bin/entrypoint"])  # the image's CMD is dropped
    assert (term.exit_code, term.message) == (0, "|")
    term = run("none", "localhost/sim-exec/no-entrypoint:v1")
    assert (term.exit_code, term.reason) == (128, "StartError")
    assert "no command" in term.message
