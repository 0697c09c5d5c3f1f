"""``sim-exec`` containers: the simulated node runs their command as a local process."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from kubernetes import client

from model_registry_devcluster.process_runner import kubelet_expand
from model_registry_devcluster.testing import wait_for

SCRIPT = r"""
set -e
test "$(cat /var/run/simexec-test/secret/password)" = "s3cr3t"
test "$(cat /var/run/simexec-test/config/renamed.txt)" = "hello"
test -d /var/run/simexec-test/scratch
touch /var/run/simexec-test/scratch/writable
if touch /var/run/simexec-test/secret/nope 2>/dev/null; then echo "secret mount is writable"; exit 9; fi
grep -q "$POD_NAME" /etc/hosts
printf '{"password": "%s", "greeting": "%s", "pod": "%s", "ns": "%s", "ip": "%s"}' \
  "$PASSWORD" "$GREETING" "$POD_NAME" "$POD_NAMESPACE" "$POD_IP" > /dev/termination-log
exit 3
"""


def exec_pod(name: str, command: list[str], **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "localhost/sim-exec/test:1",
                    "command": command,
                    **container,
                }
            ],
            "volumes": [
                {"name": "secret", "secret": {"secretName": "creds"}},
                {"name": "config", "configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "renamed.txt"}]}},
                {"name": "scratch", "emptyDir": {}},
            ],
        },
    }


def terminated(core: Any, namespace: str, name: str) -> Any:
    def check() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        if pod.status.phase in ("Succeeded", "Failed"):
            return pod.status.container_statuses[0].state.terminated
        return None

    return wait_for(check, timeout=60, message=f"pod {name} terminated")


def test_sim_exec_runs_the_command_with_env_mounts_and_termination_message(api: Any, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "data": {"password": base64.b64encode(b"s3cr3t").decode()}}
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"greeting": "hello"}})
    env = [
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    mounts = [
        {"name": "secret", "mountPath": "/var/run/simexec-test/secret", "readOnly": True},
        {"name": "config", "mountPath": "/var/run/simexec-test/config"},
        {"name": "scratch", "mountPath": "/var/run/simexec-test/scratch"},
    ]
    core.create_namespaced_pod(namespace, exec_pod("p", ["/bin/sh", "-c", SCRIPT], env=env, volumeMounts=mounts))
    term = terminated(core, namespace, "p")
    assert term.exit_code == 3, term.message
    pod = core.read_namespaced_pod("p", namespace)
    assert term.message == (
        f'{{"password": "s3cr3t", "greeting": "hello", "pod": "p", "ns": "{namespace}", "ip": "{pod.status.pod_ip}"}}'
    )


def test_sim_exec_falls_back_to_logs_and_reports_missing_secrets(api: Any, namespace: str) -> None:
    core = client.CoreV1Api(api)
    pod = exec_pod(
        "logs",
        ["/bin/sh", "-c", "echo first; echo 'the real reason' >&2; exit 1"],
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    pod["spec"]["volumes"] = []
    core.create_namespaced_pod(namespace, pod)
    term = terminated(core, namespace, "logs")
    assert term.exit_code == 1
    assert term.message.splitlines()[-1] == "the real reason"

    missing = exec_pod(
        "missing", ["/bin/true"], env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]
    )
    missing["spec"]["volumes"] = []
    core.create_namespaced_pod(namespace, missing)
    term = terminated(core, namespace, "missing")
    assert (term.exit_code, term.reason) == (128, "StartError")
    assert "nope" in term.message


def test_sim_exec_expands_variables_in_env_and_args_as_the_kubelet_does(api: Any, namespace: str) -> None:
    """`$(VAR)` in env values and args is replaced, `$$` passes a literal `$` (what the operator
    doubles user values with), an unknown `$(X)` stays as written."""
    core = client.CoreV1Api(api)
    env = [
        {"name": "FOO", "value": "bar"},
        {"name": "DERIVED", "value": "$(FOO)-x $$(FOO) $(NOPE)"},
    ]
    script = 'printf "%s|%s|%s|%s" "$1" "$2" "$3" "$DERIVED" > /dev/termination-log'
    args = ["--", "$(FOO)", "$$(FOO)", "cost: $$5 $(NOPE"]
    pod = exec_pod("expand", ["/bin/sh", "-c", script], env=env, args=args)
    pod["spec"]["volumes"] = []
    core.create_namespaced_pod(namespace, pod)
    term = terminated(core, namespace, "expand")
    assert term.exit_code == 0, term.message
    assert term.message == "bar|$(FOO)|cost: $5 $(NOPE|bar-x $(FOO) $(NOPE)"


@pytest.mark.parametrize(
    ("value", "expanded"),
    [
        ("$(A)", "1"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$1"),
        ("$$$$", "$$"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(A", "$(A"),
        ("a$", "a$"),
        ("$x$(A)", "$x1"),
        ("$(A)$(B)", "12"),
        ("$()", "$()"),
    ],
)
def test_kubelet_expansion_rules(value: str, expanded: str) -> None:
    assert kubelet_expand(value, {"A": "1", "B": "2"}) == expanded
