"""The operator running as a process against the local control plane, one namespace per test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_registry_devcluster.controlplane import ControlPlane
from model_registry_devcluster.simnode import SimulatedNode
from tests.backends.oci import DistributionRegistry
from tests.backends.process import cache_bin
from tests.backends.s3 import SeaweedS3
from tests.backends.upload_program import upload_entrypoint

from .kube import Cluster
from .uploads import UPLOAD_IMAGE

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session", autouse=True)
def upload_image(sim_node: SimulatedNode) -> str:
    """The upload image as the simulated node runs it: its ENTRYPOINT is the upload program."""
    sim_node.process_runner.provide_image_entrypoint(UPLOAD_IMAGE, [str(upload_entrypoint())])
    return UPLOAD_IMAGE


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> Cluster:
    c = Cluster(control_plane.kubeconfig)
    c.kubectl("apply", "--server-side", "-k", str(ROOT / "config" / "crd"))
    c.wait_established("crd/modelregistries.modelregistry.opendatahub.io")
    return c


class OperatorProcess:
    def __init__(self, kubeconfig: Path, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.start(workdir, extra_env)

    def start(self, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        kubeconfig = self.kubeconfig
        self.log_path = workdir / "operator.log"
        self.health_port = _free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HEALTH_PROBE_HOST": "127.0.0.1",
            "HEALTH_PROBE_PORT": str(self.health_port),
            "RESYNC_INTERVAL_SECONDS": "10",
            "LOG_LEVEL": "INFO",
            "METRICS_BIND_ADDRESS": "0",  # on where a test asks for it: operators run side by side
            **(extra_env or {}),
        }
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "model_registry_operator", "run", "--kubeconfig", str(kubeconfig)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"operator exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"operator did not become live:\n{self.tail()}")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 60) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def s3() -> Iterator[SeaweedS3]:
    """SeaweedFS S3 for the uploads of a test module."""
    with SeaweedS3() as server:
        yield server


@pytest.fixture(scope="module")
def oci() -> Iterator[DistributionRegistry]:
    """A distribution registry (plain HTTP, no auth) for the uploads of a test module."""
    with DistributionRegistry() as server:
        yield server


@pytest.fixture(scope="module")
def base_image(oci: DistributionRegistry) -> str:
    return oci.push_busybox_base()


@pytest.fixture(scope="session")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("operator"))
    yield proc
    proc.stop()


@pytest.fixture
def namespace(cluster: Cluster, operator: OperatorProcess, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(name)
    yield name
    # Registries are deleted through the operator's view of the world before the namespace goes.
    cluster.kubectl("delete", "modelregistries", "--all", "-n", name, "--wait=true", "--timeout=60s", check=False)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(f"--- operator log tail ---\n{operator.tail()}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def registry_binary() -> Path:
    """The real ``model-registry`` server binary that ``make deps`` builds."""
    binary = cache_bin() / "model-registry"
    if not binary.is_file():
        pytest.fail(f"{binary} not found: run `make deps` (hack/install-upload-backends.sh builds it)")
    return binary
