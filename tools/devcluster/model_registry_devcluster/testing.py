"""Helpers for test-suites that need a real control plane and a simulated node.

:func:`shared_dev_cluster` starts one :class:`DevCluster` per process however many suites ask
for it; a ``conftest.py`` wraps it in a session fixture::

    @pytest.fixture(scope="session")
    def dev_cluster(tmp_path_factory):
        with shared_dev_cluster(lambda: tmp_path_factory.mktemp("dev-cluster")) as cluster:
            yield cluster

:func:`k8s_unavailable_reason` says why no control plane can start here (the binaries are
missing), for the fixture to fail with. This module does not import pytest: the package is a
development tool, not a pytest plugin.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import kubernetes

from .controlplane import ControlPlane, default_bin_dir, missing_binaries
from .simnode import DEFAULT_POD_NETWORK, BehaviourPolicy, SimulatedNode

_k8s: Any = cast(Any, kubernetes)
T = TypeVar("T")


@dataclass
class DevCluster:
    """A running control plane plus its simulated node."""

    control_plane: ControlPlane
    node: SimulatedNode

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    @property
    def server_url(self) -> str:
        return self.control_plane.server_url

    @property
    def token(self) -> str:
        return self.control_plane.token

    def api_client(self) -> Any:
        """A new ``kubernetes.client.ApiClient`` for this cluster (close it when done)."""
        return _k8s.config.new_client_from_config(config_file=str(self.kubeconfig))


def k8s_unavailable_reason(bin_dir: Path | None = None) -> str | None:
    """Why a control plane cannot be started here, or ``None`` when it can."""
    missing = missing_binaries(bin_dir)
    if missing:
        where = bin_dir if bin_dir is not None else default_bin_dir()
        return f"Kubernetes binaries missing in {where} ({', '.join(missing)}): run `make k8s`"
    return None


@contextlib.contextmanager
def run_dev_cluster(
    workdir: Path | None = None,
    *,
    bin_dir: Path | None = None,
    behaviour: BehaviourPolicy | None = None,
    ready_delay: float = 0.2,
    node_name: str = "sim-node",
    image_files: Mapping[str, Mapping[str, str | Path]] | None = None,
    pod_network: str | None = None,
) -> Iterator[DevCluster]:
    """Start a :class:`ControlPlane` and a :class:`SimulatedNode`; stop both on exit.

    Without ``workdir`` a temporary directory is used and removed afterwards. ``image_files``
    says what ``sim-exec`` images hold (see :class:`SimulatedNode`); on a shared cluster use
    ``dev_cluster.node.process_runner.provide_image_files`` instead. ``pod_network`` defaults to
    ``$MRO_POD_NETWORK`` (a second cluster beside the session's: :func:`second_pod_network`).
    """
    own_dir = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="mro-cluster-")) if workdir is None else workdir
    try:
        with (
            ControlPlane(directory, bin_dir) as cp,
            SimulatedNode(
                cp.kubeconfig,
                node_name,
                behaviour,
                ready_delay,
                image_files=image_files,
                # Several suites on one machine each need their own pod addresses.
                pod_network=pod_network or session_pod_network(),
            ) as node,
        ):
            yield DevCluster(cp, node)
    finally:
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)


def session_pod_network() -> str:
    """``$MRO_POD_NETWORK``, else the default: where the session cluster's node puts its Pods."""
    return os.environ.get("MRO_POD_NETWORK", DEFAULT_POD_NETWORK)


def second_pod_network() -> str:
    """The upper half of :func:`session_pod_network`, for a cluster running beside the session's.

    Each simulated node hands out addresses in order from the start of its network, so the
    session's node would need more Pods than half its network holds (32766 in a /16) before it
    reached these; Pods of the two clusters then never share an address (``sim-exec`` processes
    bind to them).
    """
    network = ipaddress.IPv4Network(session_pod_network())
    if network.prefixlen >= 30:
        raise ValueError(f"pod network {network} is too small to split")
    return str(list(network.subnets(prefixlen_diff=1))[1])


class _Shared:
    """One cluster per test process, however many conftest files register the fixture."""

    lock = threading.Lock()
    users = 0
    stack: contextlib.ExitStack | None = None
    cluster: DevCluster | None = None


@contextlib.contextmanager
def shared_dev_cluster(workdir_factory: Callable[[], Path]) -> Iterator[DevCluster]:
    """The process-wide :class:`DevCluster`, started on first use, stopped after the last user."""
    with _Shared.lock:
        if _Shared.cluster is None:
            stack = contextlib.ExitStack()
            _Shared.cluster = stack.enter_context(run_dev_cluster(workdir_factory()))
            _Shared.stack = stack
        _Shared.users += 1
        cluster = _Shared.cluster
    try:
        yield cluster
    finally:
        with _Shared.lock:
            _Shared.users -= 1
            if _Shared.users == 0 and _Shared.stack is not None:
                stack, _Shared.stack, _Shared.cluster = _Shared.stack, None, None
                stack.close()


def wait_for(
    check: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.2,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Call ``check`` until it returns something truthy; return that or raise ``TimeoutError``.

    Exceptions raised by ``check`` count as "not yet" (the last one is chained on timeout).
    """
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {text}") from last_exc
        time.sleep(interval)
