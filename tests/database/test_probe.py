"""The database connectivity probe against real PostgreSQL and MariaDB servers."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from model_registry_operator.database.probe import (
    AUTHENTICATION_FAILED,
    CONNECTED,
    DATABASE_MISSING,
    TLS_ERROR,
    UNREACHABLE,
    MySQLTarget,
    PostgresSSLMode,
    PostgresTarget,
    ProbeResult,
    probe,
    probe_mysql,
    probe_postgres,
)
from tests.backends.certs import CertificateAuthority
from tests.backends.databases import MariaDBServer, PostgresServer

pytestmark = pytest.mark.database

WRONG_PASSWORD = "Wr0ng-pass-7f3a9c"
# Generous slack over the requested timeout for thread start-up and a loaded CI machine.
TIMEOUT_MARGIN = 1.5


Server = PostgresServer | MariaDBServer
Target = PostgresTarget | MySQLTarget


def _login(server: Server) -> dict[str, object]:
    """Target settings that log in to ``server`` as its test user."""
    return {
        "host": server.host,
        "port": server.port,
        "database": server.database,
        "username": server.user,
        "password": server.password,
    }


def pg_target(
    server: PostgresServer,
    *,
    sslmode: PostgresSSLMode = "prefer",
    **overrides: object,
) -> PostgresTarget:
    return PostgresTarget(**{**_login(server), "sslmode": sslmode, **overrides})  # type: ignore[arg-type]


def my_target(server: MariaDBServer, **overrides: object) -> MySQLTarget:
    return MySQLTarget(**{**_login(server), **overrides})  # type: ignore[arg-type]


def probe_sync(target: Target) -> ProbeResult:
    """The synchronous probe of the target's own driver."""
    if isinstance(target, PostgresTarget):
        return probe_postgres(target)
    return probe_mysql(target)


@dataclass(frozen=True)
class Flavour:
    """One database kind: its servers, how its targets ask for TLS, and its drivers' wording."""

    name: str
    server_fixture: str
    tls_server_fixture: str
    target_type: type[PostgresTarget] | type[MySQLTarget]
    make_target: Callable[..., Target]
    # Target settings that verify the server certificate against a CA (PEM text or path).
    verify: Callable[[str], dict[str, object]]
    # Target settings for a client certificate and key (PEM text).
    client_cert: Callable[[str, str], dict[str, object]]
    # Target settings that connect without TLS, and what the probe says when the server wants TLS.
    plaintext: dict[str, object]
    plaintext_rejected_text: str
    # The drivers word these failures differently.
    no_password_text: str
    wrong_ca_text: str

    def target(self, server: Server, **overrides: object) -> Target:
        return self.make_target(server, **overrides)

    def probe(self, server: Server, **overrides: object) -> ProbeResult:
        return probe_sync(self.target(server, **overrides))


POSTGRES = Flavour(
    name="postgres",
    server_fixture="postgres",
    tls_server_fixture="postgres_tls",
    target_type=PostgresTarget,
    make_target=pg_target,
    verify=lambda ca: {"sslmode": "verify-full", "sslrootcert": ca},
    client_cert=lambda cert, key: {"sslcert": cert, "sslkey": key},
    plaintext={"sslmode": "disable"},
    plaintext_rejected_text="sslmode=disable",
    no_password_text="password",
    wrong_ca_text="verify",
)
MARIADB = Flavour(
    name="mariadb",
    server_fixture="mariadb",
    tls_server_fixture="mariadb_tls",
    target_type=MySQLTarget,
    make_target=my_target,
    verify=lambda ca: {"ssl_ca": ca, "verify_server_cert": True},
    client_cert=lambda cert, key: {"ssl_cert": cert, "ssl_key": key},
    plaintext={},
    plaintext_rejected_text="requires TLS",
    no_password_text="no password",
    wrong_ca_text="verif",
)


@pytest.fixture(params=[POSTGRES, MARIADB], ids=lambda f: f.name)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    chosen: Flavour = request.param
    return chosen


# Looked up by name so that a test starts only the servers of its own flavour.
@pytest.fixture
def server(flavour: Flavour, request: pytest.FixtureRequest) -> Server:
    found: Server = request.getfixturevalue(flavour.server_fixture)
    return found


@pytest.fixture
def tls_server(flavour: Flavour, request: pytest.FixtureRequest) -> Server:
    """A server that only accepts TLS, with a certificate from ``test_ca``."""
    found: Server = request.getfixturevalue(flavour.tls_server_fixture)
    return found


def assert_result(result: ProbeResult, reason: str, *secrets: str) -> None:
    assert result.reason == reason, result
    assert result.ok is (reason == CONNECTED), result
    assert result.message, result
    assert "\n" not in result.message
    assert len(result.message) <= 240
    for secret in secrets:
        assert secret not in result.message, result


# ---------------------------------------------------------------------------
# both databases
# ---------------------------------------------------------------------------


def test_connected(flavour: Flavour, server: Server) -> None:
    result = flavour.probe(server)
    assert_result(result, CONNECTED, server.password)
    assert "over TLS" not in result.message


def test_wrong_password(flavour: Flavour, server: Server) -> None:
    result = flavour.probe(server, password=WRONG_PASSWORD)
    assert_result(result, AUTHENTICATION_FAILED, WRONG_PASSWORD, server.password)
    assert server.user in result.message


def test_no_password(flavour: Flavour, server: Server) -> None:
    result = flavour.probe(server, password=None)
    assert_result(result, AUTHENTICATION_FAILED)
    assert flavour.no_password_text in result.message


def test_password_scrubbed_from_driver_text(flavour: Flavour, server: Server) -> None:
    # The server echoes the user name; make it equal to the (wrong) password.
    result = flavour.probe(server, username=WRONG_PASSWORD, password=WRONG_PASSWORD)
    assert_result(result, AUTHENTICATION_FAILED, WRONG_PASSWORD)
    assert "***" in result.message


def test_missing_database(flavour: Flavour, server: Server) -> None:
    # On MariaDB a user with privileges on its own database only gets 1044 for any other name.
    result = flavour.probe(server, database="no_such_db")
    assert_result(result, DATABASE_MISSING, server.password)
    assert "no_such_db" in result.message


def test_unreachable(flavour: Flavour, closed_port: int) -> None:
    target = flavour.target_type(host="127.0.0.1", port=closed_port, database="x", username="x", password="secret-x1")
    result = probe_sync(target)
    assert_result(result, UNREACHABLE, "secret-x1")
    assert "refused" in result.message


def test_tls_required_by_server_but_not_used(flavour: Flavour, tls_server: Server) -> None:
    result = flavour.probe(tls_server, **flavour.plaintext)
    assert_result(result, TLS_ERROR, tls_server.password)
    assert flavour.plaintext_rejected_text in result.message


def test_tls_verification_requested_but_server_has_none(
    flavour: Flavour, server: Server, test_ca: CertificateAuthority
) -> None:
    result = flavour.probe(server, **flavour.verify(test_ca.cert_pem))
    assert_result(result, TLS_ERROR, server.password)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_verify_right_ca(flavour: Flavour, tls_server: Server, test_ca: CertificateAuthority, host: str) -> None:
    result = flavour.probe(tls_server, host=host, **flavour.verify(test_ca.cert_pem))
    assert_result(result, CONNECTED, tls_server.password)
    assert "over TLS" in result.message


def test_verify_ca_as_path(flavour: Flavour, tls_server: Server, test_ca: CertificateAuthority, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(test_ca.cert_pem)
    result = flavour.probe(tls_server, **flavour.verify(str(ca_file)))
    assert_result(result, CONNECTED, tls_server.password)


def test_verify_wrong_ca(flavour: Flavour, tls_server: Server, other_ca: CertificateAuthority) -> None:
    result = flavour.probe(tls_server, **flavour.verify(other_ca.cert_pem))
    assert_result(result, TLS_ERROR, tls_server.password)
    assert flavour.wrong_ca_text in result.message


def test_client_certificate_pem_files_are_temporary(
    flavour: Flavour,
    tls_server: Server,
    test_ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = test_ca.issue_client(tls_server.user)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    target = flavour.target(
        tls_server, **flavour.verify(test_ca.cert_pem), **flavour.client_cert(client.cert_pem, client.key_pem)
    )
    assert_result(probe_sync(target), CONNECTED, tls_server.password)
    assert list(tmp_path.iterdir()) == []
    assert client.key_pem not in repr(target)


# ---------------------------------------------------------------------------
# PostgreSQL only
# ---------------------------------------------------------------------------


def test_postgres_unknown_user(postgres: PostgresServer) -> None:
    result = probe_postgres(pg_target(postgres, username="nobody-here"))
    assert_result(result, AUTHENTICATION_FAILED, postgres.password)


def test_postgres_sslmode_require_but_server_has_none(postgres: PostgresServer) -> None:
    # sslmode=require asks for TLS without verifying; verify-full is in the shared test.
    result = probe_postgres(pg_target(postgres, sslmode="require"))
    assert_result(result, TLS_ERROR, postgres.password)


def test_postgres_prefer_uses_tls_when_required(postgres_tls: PostgresServer) -> None:
    result = probe_postgres(pg_target(postgres_tls, sslmode="prefer"))
    assert_result(result, CONNECTED, postgres_tls.password)
    assert "over TLS" in result.message


def test_postgres_verify_full_without_ca(postgres_tls: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/nonexistent")
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    result = probe_postgres(pg_target(postgres_tls, sslmode="verify-full"))
    assert_result(result, TLS_ERROR, postgres_tls.password)


def test_postgres_bad_sslmode(postgres: PostgresServer) -> None:
    result = probe_postgres(pg_target(postgres, sslmode="sometimes"))  # type: ignore[arg-type]
    assert_result(result, TLS_ERROR, postgres.password)


# ---------------------------------------------------------------------------
# MariaDB only
# ---------------------------------------------------------------------------


def test_mariadb_missing_database_global_user(mariadb: MariaDBServer) -> None:
    # With global privileges the server answers 1049 "Unknown database".
    mariadb.admin_execute(
        "CREATE USER IF NOT EXISTS 'globaluser'@'%' IDENTIFIED BY 'global-pw-1'",
        "GRANT ALL PRIVILEGES ON *.* TO 'globaluser'@'%'",
    )
    target = my_target(mariadb, username="globaluser", password="global-pw-1", database="no_such_db")
    result = probe_mysql(target)
    assert_result(result, DATABASE_MISSING, "global-pw-1")
    assert "does not exist" in result.message


def test_mariadb_tls_required_and_wrong_password(mariadb_tls: MariaDBServer) -> None:
    # The TLS retry must not turn a wrong password into a TLS problem.
    result = probe_mysql(my_target(mariadb_tls, password=WRONG_PASSWORD))
    assert_result(result, AUTHENTICATION_FAILED, WRONG_PASSWORD, mariadb_tls.password)


def test_mariadb_tls_without_verification(mariadb_tls: MariaDBServer, other_ca: CertificateAuthority) -> None:
    # verify_server_cert=False: TLS is used but the certificate is not checked.
    result = probe_mysql(my_target(mariadb_tls, ssl_ca=other_ca.cert_pem, verify_server_cert=False))
    assert_result(result, CONNECTED, mariadb_tls.password)
    assert "over TLS" in result.message


def test_mariadb_invalid_cipher(mariadb_tls: MariaDBServer) -> None:
    result = probe_mysql(my_target(mariadb_tls, ssl_cipher="NO-SUCH-CIPHER"))
    assert_result(result, TLS_ERROR, mariadb_tls.password)


# ---------------------------------------------------------------------------
# shared behaviour
# ---------------------------------------------------------------------------


def test_targets_repr_hides_secrets() -> None:
    pg = PostgresTarget(
        host="db", database="d", username="u", password="pg-secret-1", sslkey="KEY-PEM", sslpassword="key-pw-1"
    )
    my = MySQLTarget(host="db", database="d", username="u", password="my-secret-1", ssl_key="KEY-PEM")
    for text in (repr(pg), str(pg)):
        assert "pg-secret-1" not in text
        assert "KEY-PEM" not in text
        assert "key-pw-1" not in text
    for text in (repr(my), str(my)):
        assert "my-secret-1" not in text
        assert "KEY-PEM" not in text


async def _ticks_while(coro_result: asyncio.Task[ProbeResult], interval: float = 0.05) -> int:
    ticks = 0
    while not coro_result.done():
        await asyncio.sleep(interval)
        ticks += 1
    return ticks


async def test_probe_runs_in_a_thread_and_honours_the_timeout(silent_port: int, flavour: Flavour) -> None:
    # libpq's connect timeout has whole-second granularity with a 2 s minimum.
    timeout = 2.0
    target = flavour.target_type(host="127.0.0.1", port=silent_port, database="d", username="u", password="p-1")
    started = time.monotonic()
    task = asyncio.create_task(probe(target, timeout=timeout))
    ticks = await _ticks_while(task)
    result = await task
    elapsed = time.monotonic() - started
    assert_result(result, UNREACHABLE, "p-1")
    assert "timed out" in result.message
    assert elapsed >= timeout - 0.2
    assert elapsed <= timeout + TIMEOUT_MARGIN
    # The loop kept running: roughly one tick per 50 ms (allow heavy scheduling noise).
    assert ticks >= (timeout / 0.05) * 0.5, ticks


async def test_probe_dispatches(postgres: PostgresServer, mariadb: MariaDBServer) -> None:
    pg_result, my_result = await asyncio.gather(probe(pg_target(postgres)), probe(my_target(mariadb)))
    assert_result(pg_result, CONNECTED)
    assert "PostgreSQL" in pg_result.message
    assert_result(my_result, CONNECTED)
    assert "MySQL" in my_result.message


async def test_probe_rejects_unknown_target() -> None:
    with pytest.raises(TypeError):
        await probe("postgres://nope")  # type: ignore[arg-type]
