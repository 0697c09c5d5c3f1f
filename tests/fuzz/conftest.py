"""The fuzz suite's API server: the session's local control plane with the CRDs (ours and the
optional APIs' stand-ins) and one namespace, for this package only.

Hypothesis settings: the ``mro-fuzz`` profile, derandomized (the same objects on every run) unless
``MRO_FUZZ_RANDOM=1``; ``MRO_FUZZ_EXAMPLES`` sets the examples per kind (default 300, so 600 objects);
``MRO_FUZZ_SHRINK_SECONDS`` bounds the shrinking of a failure (default 60, 0 for none).
The profile is applied to this suite's tests only, never loaded globally.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.internal.conjecture import engine as _engine

from model_registry_devcluster.controlplane import ControlPlane
from tests.integration import thirdparty
from tests.integration.kube import Cluster

from .harness import ApiServer

ROOT = Path(__file__).resolve().parents[2]

EXAMPLES = int(os.environ.get("MRO_FUZZ_EXAMPLES", "300"))
RANDOM = os.environ.get("MRO_FUZZ_RANDOM", "") not in ("", "0")
# Shrinking a failure replays objects through the API server: bounded (hypothesis' own bound is 5 min).
SHRINK_SECONDS = int(os.environ.get("MRO_FUZZ_SHRINK_SECONDS", "60"))
PHASES = tuple(Phase) if SHRINK_SECONDS > 0 else tuple(p for p in Phase if p is not Phase.shrink)

settings.register_profile(
    "mro-fuzz",
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    database=None,
    deadline=None,
    report_multiple_bugs=True,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FUZZ = settings.get_profile("mro-fuzz")


@pytest.fixture(scope="package", autouse=True)
def _bounded_shrinking() -> Iterator[None]:
    """Hypothesis' time bound for shrinking, for this package's tests only."""
    default = getattr(_engine, "MAX_SHRINKING_SECONDS", None)
    if default is not None:
        _engine.MAX_SHRINKING_SECONDS = SHRINK_SECONDS
    yield
    if default is not None:
        _engine.MAX_SHRINKING_SECONDS = default


@pytest.fixture(scope="package")
def fuzz_cluster(control_plane: ControlPlane) -> Iterator[Cluster]:
    """Our CRDs and the optional APIs' stand-in CRDs, removed again after this package."""
    cluster = Cluster(control_plane.kubeconfig)
    cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "config" / "crd"))
    for crd in ("modelregistries", "modeluploadjobs"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}.modelregistry.opendatahub.io")
    groups = (*thirdparty.OPENSHIFT, *thirdparty.ISTIO)
    thirdparty.install(cluster, *groups)
    yield cluster
    thirdparty.uninstall(cluster, *groups)


@pytest.fixture(scope="package")
def fuzz_api(fuzz_cluster: Cluster) -> Iterator[ApiServer]:
    """Dry-run requests into one namespace of this package."""
    namespace = f"fuzz-{uuid.uuid4().hex[:8]}"
    fuzz_cluster.create_namespace(namespace)
    api = ApiServer(fuzz_cluster.kube, namespace)
    yield api
    api.pool.shutdown()
    # Gone before the CRDs go: a namespace terminating while they do holds their deletion up.
    for extra in sorted(api.created_namespaces() | {namespace}):
        fuzz_cluster.kubectl("delete", "namespace", extra, "--ignore-not-found", "--timeout=60s", check=False)
