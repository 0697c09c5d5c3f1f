"""The database connectivity probe against real PostgreSQL and MariaDB servers."""

from __future__ import annotations

import asyncio
import tempfile
import time
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


def pg_target(
    server: PostgresServer,
    *,
    sslmode: PostgresSSLMode = "prefer",
    **overrides: object,
) -> PostgresTarget:
    fields: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "database": server.database,
        "username": server.user,
        "password": server.password,
        "sslmode": sslmode,
    }
    fields.update(overrides)
    return PostgresTarget(**fields)  # type: ignore[arg-type]


def my_target(server: MariaDBServer, **overrides: object) -> MySQLTarget:
    fields: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "database": server.database,
        "username": server.user,
        "password": server.password,
    }
    fields.update(overrides)
    return MySQLTarget(**fields)  # type: ignore[arg-type]


def assert_result(result: ProbeResult, reason: str, *secrets: str) -> None:
    assert result.reason == reason, result
    assert result.ok is (reason == CONNECTED), result
    assert result.message, result
    assert "\n" not in result.message
    assert len(result.message) <= 240
    for secret in secrets:
        assert secret not in result.message, result


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------


def test_postgres_connected(postgres: PostgresServer) -> None:
    result = probe_postgres(pg_target(postgres))
    assert_result(result, CONNECTED, postgres.password)
    assert "over TLS" not in result.message


def test_postgres_wrong_password(postgres: PostgresServer) -> None:
    result = probe_postgres(pg_target(postgres, password=WRONG_PASSWORD))
    assert_result(result, AUTHENTICATION_FAILED, WRONG_PASSWORD, postgres.password)
    assert postgres.user in result.message


def test_postgres_unknown_user(postgres: PostgresServer) -> None:
    result = probe_postgres(pg_target(postgres, username="nobody-here"))
    assert_result(result, AUTHENTICATION_FAILED, postgres.password)


def test_postgres_no_password(postgres: PostgresServer) -> None:
    result = probe_postgres(pg_target(postgres, password=None))
    assert_result(result, AUTHENTICATION_FAILED)
    assert "password" in result.message


def test_postgres_password_scrubbed_from_driver_text(postgres: PostgresServer) -> None:
    # The server echoes the user name; make it equal to the (wrong) password.
    result = probe_postgres(pg_target(postgres, username=WRONG_PASSWORD, password=WRONG_PASSWORD))
    assert_result(result, AUTHENTICATION_FAILED, WRONG_PASSWORD)
    assert "***" in result.message


def test_postgres_missing_database(postgres: PostgresServer) -> None:
    result = probe_postgres(pg_target(postgres, database="no_such_db"))
    assert_result(result, DATABASE_MISSING, postgres.password)
    assert "no_such_db" in result.message


def test_postgres_unreachable(closed_port: int) -> None:
    target = PostgresTarget(
        host="127.0.0.1", port=closed_port, database="x", username="x", password="secret-x1"
    )
    assert_result(probe_postgres(target), UNREACHABLE, "secret-x1")


def test_postgres_tls_required_by_server_but_disabled(postgres_tls: PostgresServer) -> None:
    result = probe_postgres(pg_target(postgres_tls, sslmode="disable"))
    assert_result(result, TLS_ERROR, postgres_tls.password)
    assert "sslmode=disable" in result.message


def test_postgres_tls_requested_but_server_has_none(
    postgres: PostgresServer, test_ca: CertificateAuthority
) -> None:
    result = probe_postgres(pg_target(postgres, sslmode="require"))
    assert_result(result, TLS_ERROR, postgres.password)
    result = probe_postgres(pg_target(postgres, sslmode="verify-full", sslrootcert=test_ca.cert_pem))
    assert_result(result, TLS_ERROR, postgres.password)


def test_postgres_prefer_uses_tls_when_required(postgres_tls: PostgresServer) -> None:
    result = probe_postgres(pg_target(postgres_tls, sslmode="prefer"))
    assert_result(result, CONNECTED, postgres_tls.password)
    assert "over TLS" in result.message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_postgres_verify_full_right_ca(
    postgres_tls: PostgresServer, test_ca: CertificateAuthority, host: str
) -> None:
    target = pg_target(postgres_tls, host=host, sslmode="verify-full", sslrootcert=test_ca.cert_pem)
    result = probe_postgres(target)
    assert_result(result, CONNECTED, postgres_tls.password)
    assert "over TLS" in result.message


def test_postgres_verify_full_ca_as_path(
    postgres_tls: PostgresServer, test_ca: CertificateAuthority, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(test_ca.cert_pem)
    result = probe_postgres(pg_target(postgres_tls, sslmode="verify-full", sslrootcert=str(ca_file)))
    assert_result(result, CONNECTED, postgres_tls.password)


def test_postgres_verify_full_wrong_ca(postgres_tls: PostgresServer, other_ca: CertificateAuthority) -> None:
    result = probe_postgres(pg_target(postgres_tls, sslmode="verify-full", sslrootcert=other_ca.cert_pem))
    assert_result(result, TLS_ERROR, postgres_tls.password)
    assert "verify" in result.message


def test_postgres_verify_full_without_ca(postgres_tls: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/nonexistent")
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    result = probe_postgres(pg_target(postgres_tls, sslmode="verify-full"))
    assert_result(result, TLS_ERROR, postgres_tls.password)


def test_postgres_client_certificate_pem_files_are_temporary(
    postgres_tls: PostgresServer,
    test_ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = test_ca.issue_client(postgres_tls.user)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    target = pg_target(
        postgres_tls,
        sslmode="verify-full",
        sslrootcert=test_ca.cert_pem,
        sslcert=client.cert_pem,
        sslkey=client.key_pem,
    )
    assert_result(probe_postgres(target), CONNECTED, postgres_tls.password)
    assert list(tmp_path.iterdir()) == []
    assert client.key_pem not in repr(target)


def test_postgres_bad_sslmode(postgres: PostgresServer) -> None:
    result = probe_postgres(pg_target(postgres, sslmode="sometimes"))  # type: ignore[arg-type]
    assert_result(result, TLS_ERROR, postgres.password)


# ---------------------------------------------------------------------------
# MariaDB
# ---------------------------------------------------------------------------


def test_mariadb_connected(mariadb: MariaDBServer) -> None:
    result = probe_mysql(my_target(mariadb))
    assert_result(result, CONNECTED, mariadb.password)
    assert "over TLS" not in result.message


def test_mariadb_wrong_password(mariadb: MariaDBServer) -> None:
    result = probe_mysql(my_target(mariadb, password=WRONG_PASSWORD))
    assert_result(result, AUTHENTICATION_FAILED, WRONG_PASSWORD, mariadb.password)
    assert mariadb.user in result.message


def test_mariadb_no_password(mariadb: MariaDBServer) -> None:
    result = probe_mysql(my_target(mariadb, password=None))
    assert_result(result, AUTHENTICATION_FAILED)
    assert "no password" in result.message


def test_mariadb_password_scrubbed_from_driver_text(mariadb: MariaDBServer) -> None:
    result = probe_mysql(my_target(mariadb, username=WRONG_PASSWORD, password=WRONG_PASSWORD))
    assert_result(result, AUTHENTICATION_FAILED, WRONG_PASSWORD)
    assert "***" in result.message


def test_mariadb_missing_database(mariadb: MariaDBServer) -> None:
    # A user with privileges on its own database only gets 1044 for any other name.
    result = probe_mysql(my_target(mariadb, database="no_such_db"))
    assert_result(result, DATABASE_MISSING, mariadb.password)
    assert "no_such_db" in result.message


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


def test_mariadb_unreachable(closed_port: int) -> None:
    target = MySQLTarget(host="127.0.0.1", port=closed_port, database="x", username="x", password="secret-x1")
    result = probe_mysql(target)
    assert_result(result, UNREACHABLE, "secret-x1")
    assert "refused" in result.message


def test_mariadb_tls_required_by_server_but_not_used(mariadb_tls: MariaDBServer) -> None:
    result = probe_mysql(my_target(mariadb_tls))
    assert_result(result, TLS_ERROR, mariadb_tls.password)
    assert "requires TLS" in result.message


def test_mariadb_tls_required_and_wrong_password(mariadb_tls: MariaDBServer) -> None:
    # The TLS retry must not turn a wrong password into a TLS problem.
    result = probe_mysql(my_target(mariadb_tls, password=WRONG_PASSWORD))
    assert_result(result, AUTHENTICATION_FAILED, WRONG_PASSWORD, mariadb_tls.password)


def test_mariadb_tls_requested_but_server_has_none(
    mariadb: MariaDBServer, test_ca: CertificateAuthority
) -> None:
    result = probe_mysql(my_target(mariadb, ssl_ca=test_ca.cert_pem, verify_server_cert=True))
    assert_result(result, TLS_ERROR, mariadb.password)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_mariadb_verify_right_ca(mariadb_tls: MariaDBServer, test_ca: CertificateAuthority, host: str) -> None:
    target = my_target(mariadb_tls, host=host, ssl_ca=test_ca.cert_pem, verify_server_cert=True)
    result = probe_mysql(target)
    assert_result(result, CONNECTED, mariadb_tls.password)
    assert "over TLS" in result.message


def test_mariadb_verify_ca_as_path(
    mariadb_tls: MariaDBServer, test_ca: CertificateAuthority, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(test_ca.cert_pem)
    target = my_target(mariadb_tls, ssl_ca=str(ca_file), verify_server_cert=True)
    assert_result(probe_mysql(target), CONNECTED, mariadb_tls.password)


def test_mariadb_verify_wrong_ca(mariadb_tls: MariaDBServer, other_ca: CertificateAuthority) -> None:
    result = probe_mysql(my_target(mariadb_tls, ssl_ca=other_ca.cert_pem, verify_server_cert=True))
    assert_result(result, TLS_ERROR, mariadb_tls.password)
    assert "verif" in result.message


def test_mariadb_tls_without_verification(mariadb_tls: MariaDBServer, other_ca: CertificateAuthority) -> None:
    # verify_server_cert=False: TLS is used but the certificate is not checked.
    result = probe_mysql(my_target(mariadb_tls, ssl_ca=other_ca.cert_pem, verify_server_cert=False))
    assert_result(result, CONNECTED, mariadb_tls.password)
    assert "over TLS" in result.message


def test_mariadb_invalid_cipher(mariadb_tls: MariaDBServer) -> None:
    result = probe_mysql(my_target(mariadb_tls, ssl_cipher="NO-SUCH-CIPHER"))
    assert_result(result, TLS_ERROR, mariadb_tls.password)


def test_mariadb_client_certificate_pem_files_are_temporary(
    mariadb_tls: MariaDBServer,
    test_ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = test_ca.issue_client(mariadb_tls.user)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    target = my_target(
        mariadb_tls,
        ssl_ca=test_ca.cert_pem,
        ssl_cert=client.cert_pem,
        ssl_key=client.key_pem,
        verify_server_cert=True,
    )
    assert_result(probe_mysql(target), CONNECTED, mariadb_tls.password)
    assert list(tmp_path.iterdir()) == []
    assert client.key_pem not in repr(target)


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


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
async def test_probe_runs_in_a_thread_and_honours_the_timeout(silent_port: int, backend: str) -> None:
    # libpq's connect timeout has whole-second granularity with a 2 s minimum.
    timeout = 2.0
    target: PostgresTarget | MySQLTarget
    if backend == "postgres":
        target = PostgresTarget(host="127.0.0.1", port=silent_port, database="d", username="u", password="p-1")
    else:
        target = MySQLTarget(host="127.0.0.1", port=silent_port, database="d", username="u", password="p-1")
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
