"""Session-wide real back-ends for the upload-program tests (all on free 127.0.0.1 ports).

A missing server binary FAILS the tests with "run make deps" (hack/install-upload-backends.sh);
nothing is skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from model_registry_upload import redact  # noqa: E402
from tests.backends.databases import MissingServerBinaryError, ServerStartError  # noqa: E402
from tests.backends.http import BASIC_PASSWORD, BASIC_USER, NginxServer  # noqa: E402
from tests.backends.oci import DistributionRegistry  # noqa: E402
from tests.backends.registry_server import Database, RealRegistryServer, registry_server  # noqa: E402
from tests.backends.s3 import SeaweedS3  # noqa: E402

T = TypeVar("T")


def _serve(factory: Callable[[], T]) -> Iterator[T]:
    server: Any = factory()
    try:
        server.start()
    except MissingServerBinaryError as exc:
        pytest.fail(f"{exc} (needed by the upload tests)", pytrace=False)
    except ServerStartError as exc:
        pytest.fail(f"could not start a test back-end: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedS3]:
    yield from _serve(SeaweedS3)


@pytest.fixture(scope="session")
def oci_registry() -> Iterator[DistributionRegistry]:
    yield from _serve(DistributionRegistry)


@pytest.fixture(scope="session")
def oci_registry_auth() -> Iterator[DistributionRegistry]:
    yield from _serve(lambda: DistributionRegistry(auth=True))


@pytest.fixture(scope="session")
def nginx() -> Iterator[NginxServer]:
    yield from _serve(NginxServer)


@pytest.fixture(scope="session")
def nginx_basic_auth() -> Iterator[NginxServer]:
    """nginx whose files under ``/protected/`` need basic auth ``BASIC_USER`` / ``BASIC_PASSWORD``."""
    yield from _serve(lambda: NginxServer(basic_auth=(BASIC_USER, BASIC_PASSWORD)))


@pytest.fixture(scope="session")
def mr_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRegistryServer]:
    """The real model registry server on MariaDB (see tests/backends/registry_server.py)."""
    yield from _registry(tmp_path_factory, "mariadb")


@pytest.fixture(scope="session")
def mr_server_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRegistryServer]:
    """The real model registry server on PostgreSQL (see PARENT_LOOKUP_DEFECT there)."""
    yield from _registry(tmp_path_factory, "postgres")


def _registry(tmp_path_factory: pytest.TempPathFactory, database: Database) -> Iterator[RealRegistryServer]:
    try:
        with registry_server(tmp_path_factory.mktemp(f"model-registry-{database}"), database) as server:
            yield server
    except MissingServerBinaryError as exc:
        pytest.fail(f"{exc} (needed by the upload tests)", pytrace=False)
    except ServerStartError as exc:
        pytest.fail(f"could not start the model registry server on {database}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def base_image(oci_registry: DistributionRegistry) -> str:
    return oci_registry.push_busybox_base()


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    redact.clear_secrets()


@pytest.fixture(scope="session")
def oci_registry_tls_token() -> Iterator[DistributionRegistry]:
    """TLS (test CA) + bearer-token auth."""
    yield from _serve(lambda: DistributionRegistry(auth="token", tls=True))
