"""Session-wide throwaway PostgreSQL and MariaDB servers for the database tests.

Each server is started once per test session on a free 127.0.0.1 port and
removed at the end. Missing server binaries make the fixtures *fail* with a
pointer to ``make deps``: these tests are never skipped silently.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests.backends.certs import CertificateAuthority, CertPair
from tests.backends.databases import (
    MariaDBServer,
    MissingServerBinaryError,
    PostgresServer,
    ServerStartError,
    ServerTLS,
)

_S = TypeVar("_S", PostgresServer, MariaDBServer)


def _serve(factory: Callable[[], _S]) -> Iterator[_S]:
    server = factory()
    failure = ""
    try:
        server.start()
    except MissingServerBinaryError as exc:
        failure = f"the database tests need PostgreSQL and MariaDB installed: {exc}"
    except ServerStartError as exc:
        failure = str(exc)
    if failure:
        pytest.fail(failure, pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def test_ca() -> CertificateAuthority:
    """The CA that signed the servers' certificates."""
    return CertificateAuthority("model-registry test CA")


@pytest.fixture(scope="session")
def other_ca() -> CertificateAuthority:
    """An unrelated CA: verification against it must fail."""
    return CertificateAuthority("unrelated test CA")


@pytest.fixture(scope="session")
def server_cert(test_ca: CertificateAuthority) -> CertPair:
    """Server certificate with SAN DNS:localhost, IP:127.0.0.1."""
    return test_ca.issue_server()


@pytest.fixture(scope="session")
def server_tls(test_ca: CertificateAuthority, server_cert: CertPair) -> ServerTLS:
    """TLS-only: clients without TLS are rejected."""
    return ServerTLS(cert_pem=server_cert.cert_pem, key_pem=server_cert.key_pem, ca_pem=test_ca.cert_pem, required=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """PostgreSQL without TLS (scram-sha-256 on 127.0.0.1)."""
    yield from _serve(PostgresServer)


@pytest.fixture(scope="session")
def postgres_tls(server_tls: ServerTLS) -> Iterator[PostgresServer]:
    """PostgreSQL that only accepts TLS connections (``hostssl`` only)."""
    yield from _serve(lambda: PostgresServer(tls=server_tls))


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """MariaDB without TLS."""
    yield from _serve(MariaDBServer)


@pytest.fixture(scope="session")
def mariadb_tls(server_tls: ServerTLS) -> Iterator[MariaDBServer]:
    """MariaDB with ``require_secure_transport=ON``."""
    yield from _serve(lambda: MariaDBServer(tls=server_tls))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A 127.0.0.1 port that completes TCP handshakes but never answers.

    The socket listens but never accepts, so the kernel queues the connection
    and a client waits for a greeting until its own timeout.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nobody listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
