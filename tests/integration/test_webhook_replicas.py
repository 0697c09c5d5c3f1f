"""Two replicas with leader election and the admission webhooks: the standby answers them too.

The webhook Service sends admission requests to every ready replica, and a standby is ready. Here
the Service's one endpoint is moved between the two processes (each listens on its own loopback
port) so that the API server's calls reach exactly the replica under test: the standby, then the
new leader after a failover, then the old leader restarted as the new standby.
"""

from __future__ import annotations

import datetime
import signal
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from model_registry_operator.kube import lookup
from model_registry_operator.webhooks.certificates import Material, generate, service_names
from tests.backends.certs import served_certificate

from .conftest import OperatorProcess, _free_port
from .kube import MR, Cluster, wait_for
from .test_webhooks import DENIED, PATHS, SELECTOR_LABEL, SERVICE, _configurations, _service, proxied, refused

pytestmark = pytest.mark.integration

LEASE = {"LEASE_DURATION": "10", "RENEW_DEADLINE": "6", "RETRY_PERIOD": "1"}
SLICE = f"{SERVICE}-operator"


class Replica:
    def __init__(self, cluster: Cluster, workdir: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.env = {**env, "WEBHOOK_PORT": str(self.port), "WEBHOOK_CERT_DIR": str(workdir / "certs")}
        self.workdir = workdir
        workdir.mkdir()
        self.operator = OperatorProcess(cluster.kubeconfig, workdir, self.env)

    def readyz(self) -> str:
        url = f"http://127.0.0.1:{self.operator.health_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 - a loopback test URL
                return str(answer.read().decode())
        except urllib.error.HTTPError as exc:  # not ready (yet): the body still names the role
            return str(exc.read().decode())

    def role(self) -> str:
        body = self.readyz()
        return "leader" if "(leader)" in body else "standby" if "(standby)" in body else "?"

    def listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def served_serial(self) -> int:
        return int(served_certificate(self.port).serial_number)

    def refusals(self, name: str) -> list[str]:
        return [line for line in self.operator.text().splitlines() if f"/{name}: metadata.name:" in line]


def route_to(cluster: Cluster, namespace: str, replica: Replica) -> None:
    """The webhook Service's only endpoint becomes ``replica``'s listener."""
    cluster.kube.request_sync(
        "PATCH",
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{SLICE}",
        body={"ports": [{"name": "https", "port": replica.port, "protocol": "TCP"}]},
        content_type="application/merge-patch+json",
    )
    cluster.kube.request_sync(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/services/{SERVICE}",
        body={"spec": {"ports": [{"port": 443, "targetPort": replica.port, "name": "https", "protocol": "TCP"}]}},
        content_type="application/merge-patch+json",
    )


@pytest.fixture
def setup(
    cluster: Cluster, operator: OperatorProcess, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, str, str, str, dict[str, str]]]:
    """The ops namespace (Lease, Secret, Service), two registry namespaces the webhooks apply to,
    and the operators' environment; the suite's own operator is stopped (it would be a third)."""
    key = uuid.uuid4().hex[:6]
    ops, first, second = f"t-ops-{key}", f"t-{key}-a", f"t-{key}-b"
    for name in (ops, first, second):
        cluster.create_namespace(name)
    for name in (first, second):
        cluster.kube.request_sync(
            "PATCH",
            f"/api/v1/namespaces/{name}",
            body={"metadata": {"labels": {SELECTOR_LABEL: key}}},
            content_type="application/merge-patch+json",
        )
    docs = _configurations(key, ops)
    configurations = {d["kind"]: d["metadata"]["name"] for d in docs}
    for obj in _service(ops, _free_port()):
        cluster.kube.request_sync("POST", lookup(obj["apiVersion"], obj["kind"]).path(ops), body=obj)
    for doc in docs:
        cluster.kube.request_sync("POST", PATHS[doc["kind"]], body=doc)
    env = {
        "ENABLE_WEBHOOKS": "true",
        "WEBHOOK_BIND_ADDRESS": "127.0.0.1",
        "WEBHOOK_SERVICE_NAME": SERVICE,
        "WEBHOOK_CERT_SECRET": "webhook-server-cert",
        "WEBHOOK_CERT_CHECK_SECONDS": "1",
        "WEBHOOK_VALIDATING_CONFIGURATION": configurations["ValidatingWebhookConfiguration"],
        "WEBHOOK_MUTATING_CONFIGURATION": configurations["MutatingWebhookConfiguration"],
        "POD_NAMESPACE": ops,
        "LEADER_ELECT": "true",
        "LEADER_ELECTION_NAMESPACE": ops,
        "WATCH_NAMESPACE": first,
        **{f"LEADER_ELECTION_{k}": v for k, v in LEASE.items()},
    }
    operator.stop()
    try:
        yield cluster, ops, first, second, env
    finally:
        for kind, name in configurations.items():
            cluster.kube.request_sync("DELETE", f"{PATHS[kind]}/{name}")
        operator.start(tmp_path_factory.mktemp("operator-after-webhook-replicas"))
        for name in (first, second):
            cluster.kubectl(
                "delete", "modelregistries", "--all", "-n", name, "--wait=true", "--timeout=60s", check=False
            )
        for name in (ops, first, second):
            cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_the_standby_serves_the_webhooks_and_a_failover_keeps_them_answering(
    setup: tuple[Cluster, str, str, str, dict[str, str]], tmp_path: Path
) -> None:
    cluster, ops, first, second, env = setup
    replicas: list[Replica] = []
    try:
        a = Replica(cluster, tmp_path / "a", env)
        replicas.append(a)
        wait_for(lambda: a.role() == "leader", timeout=30, what="replica a leading")
        b = Replica(cluster, tmp_path / "b", env)
        replicas.append(b)
        wait_for(b.listening, timeout=30, what="the standby's webhook server listening")
        assert b.role() == "standby"

        # Only the standby behind the Service: the API server's calls reach it alone.
        route_to(cluster, ops, b)
        name = f"taken-{uuid.uuid4().hex[:4]}"
        cluster.apply_yaml(proxied(name), first)
        expected = f"metadata.name: ModelRegistry {first}/{name} already has this name"

        def refused_by(replica: Replica) -> str | None:
            stderr = refused(cluster, proxied(name), second)
            return stderr if expected in stderr and replica.refusals(name) else None

        stderr = wait_for(lambda: refused_by(b), timeout=30, what="the standby refusing the colliding registry")
        assert DENIED in stderr
        assert b.role() == "standby"
        assert not a.refusals(name)
        # Its mutation too: an empty postgres block beside mysql is dropped (the CRD refuses both).
        mutated = f"mutated-{name}"
        db = {"host": "127.0.0.1", "port": 3306, "database": "d", "username": "u"}
        cluster.apply_yaml(
            "apiVersion: modelregistry.opendatahub.io/v1beta1\nkind: ModelRegistry\n"
            f"metadata: {{name: {mutated}}}\nspec: {{rest: {{}}, mysql: {db}, postgres: {{}}}}\n",
            first,
        )
        stored = cluster.get(MR, first, mutated)
        assert stored is not None
        assert "postgres" not in stored["spec"]

        # Failover: the leader killed, b takes over and keeps answering throughout.
        a.operator.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        answered = 0
        while b.role() != "leader":
            assert time.monotonic() - killed < 30, "the standby did not take over"
            assert expected in refused(cluster, proxied(name), second)
            answered += 1
            time.sleep(0.5)
        assert answered, "no admission request during the takeover"
        assert expected in refused(cluster, proxied(name), second)

        # The old leader back, now the standby, alone behind the Service.
        a.operator.log.close()
        a.operator.start(tmp_path / "a", a.env)
        wait_for(a.listening, timeout=30, what="the restarted replica's webhook server listening")
        assert a.role() == "standby"
        route_to(cluster, ops, a)
        wait_for(lambda: refused_by(a), timeout=30, what="the new standby refusing the colliding registry")
        assert cluster.get(MR, second, name) is None

        # A certificate due for renewal in the Secret: one replica renews it, both serve the new one.
        short = generate(service_names(SERVICE, ops), datetime.timedelta(seconds=5))
        secret_path = f"/api/v1/namespaces/{ops}/secrets/{env['WEBHOOK_CERT_SECRET']}"
        patch = {"data": short.as_secret_data()}
        cluster.kube.request_sync("PATCH", secret_path, body=patch, content_type="application/merge-patch+json")

        def renewed() -> Material | None:
            live = Material.from_secret(cluster.kube.request_sync("GET", secret_path))
            return live if live is not None and live.cert != short.cert else None

        final = wait_for(renewed, timeout=30, what="the short-lived certificate renewed")
        serial = x509.load_pem_x509_certificate(final.cert).serial_number
        for replica in (a, b):
            wait_for(lambda r=replica: r.served_serial() == serial, timeout=10, what="the renewed certificate served")
        renewals = [line for r in (a, b) for line in r.operator.text().splitlines() if "certificate renewed" in line]
        assert len(renewals) == 1, renewals
        before = len(a.refusals(name))

        def refused_again() -> bool:
            return expected in refused(cluster, proxied(name), second) and len(a.refusals(name)) > before

        wait_for(refused_again, timeout=30, what="the standby refusing with the renewed certificate")
    finally:
        for replica in replicas:
            print(f"--- replica {replica.workdir.name} log tail ---\n{replica.operator.tail(30)}")
            if replica.operator.alive:
                replica.operator.stop()
