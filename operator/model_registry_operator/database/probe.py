"""Live connectivity probe for a Model Registry's external database.

The result feeds the ``DatabaseAvailable`` status condition. A probe opens one
real connection with the credentials and TLS settings the registry will use,
and reports one of these reasons:

``Connected``
    The connection (including authentication) succeeded.
``AuthenticationFailed``
    The server answered but rejected the user or password (or the client host).
``Unreachable``
    Connection refused, DNS failure, timeout, or a server not accepting
    connections (starting up / shutting down).
``DatabaseMissing``
    Authentication worked but the database does not exist (MySQL/MariaDB also
    report this when the user has no privilege at all on that database).
``TLSError``
    The server requires TLS and the client does not use it, TLS was requested
    but the server has none, certificate verification failed, or the TLS
    settings themselves are unusable.
``Unknown``
    Anything else; the message carries the driver's text.

The drivers are blocking (psycopg in sync mode, PyMySQL); :func:`probe` runs
them in a worker thread so the event loop is never blocked. Messages are
short, human, and never contain the password: it is scrubbed from every driver
message, and it is left out of the targets' ``repr``.

PostgreSQL note: libpq exposes no SQLSTATE for failures during connection
start-up (psycopg's ``sqlstate`` is ``None`` there), so PostgreSQL failures are
classified from the server's ``FATAL`` text (28P01/28000 ``password
authentication failed`` / ``no pg_hba.conf entry``, 3D000 ``database ... does
not exist``) and libpq's own client messages. MySQL/MariaDB failures are
classified by error number, and by exception type for socket and TLS errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import socket
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import psycopg
import pymysql

from ..names import AUTHENTICATION_FAILED, CONNECTED, DATABASE_MISSING, TLS_ERROR, UNKNOWN, UNREACHABLE

__all__ = [
    "AUTHENTICATION_FAILED",
    "CONNECTED",
    "DATABASE_MISSING",
    "TLS_ERROR",
    "UNKNOWN",
    "UNREACHABLE",
    "MySQLTarget",
    "PostgresTarget",
    "ProbeResult",
    "probe",
    "probe_mysql",
    "probe_postgres",
]


DEFAULT_TIMEOUT: Final = 3.0
_MAX_DETAIL = 240
_SCRUBBED = "***"

PostgresSSLMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
_PG_SSLMODES: Final = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of one probe. ``reason`` is one of the module's reason constants."""

    ok: bool
    reason: str
    message: str


@dataclass(frozen=True, kw_only=True)
class PostgresTarget:
    """Where and how to connect to PostgreSQL.

    ``sslrootcert``, ``sslcert`` and ``sslkey`` each take either a file path or
    the PEM text itself (as read from a Secret/ConfigMap); PEM text is written
    to a private temporary directory for the duration of the probe.
    ``sslrootcert`` also accepts libpq's special value ``system``.
    ``sslpassword`` decrypts an encrypted client key.
    """

    host: str
    port: int = 5432
    database: str
    username: str
    password: str | None = field(default=None, repr=False)
    sslmode: PostgresSSLMode = "prefer"
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = field(default=None, repr=False)
    sslpassword: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class MySQLTarget:
    """Where and how to connect to MySQL / MariaDB.

    Any SSL setting (CA, client certificate/key, cipher, or
    ``verify_server_cert=True``) makes TLS mandatory for the probe; with none of
    them the probe connects without TLS, as the registry does. ``ssl_ca``,
    ``ssl_cert`` and ``ssl_key`` take a file path or the PEM text itself
    (``ssl_ca`` also a directory of hashed CA files).
    ``verify_server_cert`` checks the certificate chain (against ``ssl_ca``, or
    the system CAs without one) and the host name; when false the server
    certificate is not checked at all.
    """

    host: str
    port: int = 3306
    database: str
    username: str
    password: str | None = field(default=None, repr=False)
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = field(default=None, repr=False)
    ssl_cipher: str | None = None
    verify_server_cert: bool = False

    @property
    def tls_requested(self) -> bool:
        return bool(self.ssl_ca or self.ssl_cert or self.ssl_key or self.ssl_cipher) or (self.verify_server_cert)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _scrub(text: str, secrets: tuple[str | None, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _SCRUBBED)
    return text


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 1].rstrip() + "…"
    return text


def _result(ok: bool, reason: str, message: str, secrets: tuple[str | None, ...]) -> ProbeResult:
    # Scrub before shortening (a cut could split a secret), and after (whitespace folding).
    return ProbeResult(ok=ok, reason=reason, message=_scrub(_shorten(_scrub(message, secrets)), secrets))


def _is_pem(value: str) -> bool:
    return "-----BEGIN " in value


class _PemFiles:
    """Materialises PEM text as 0600 files in a private (0700) temp dir."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def path_for(self, value: str | None, name: str) -> str | None:
        if value is None or value == "":
            return None
        if not _is_pem(value):
            return value
        path = self._dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value if value.endswith("\n") else value + "\n")
        return str(path)


@contextlib.contextmanager
def _pem_files() -> Iterator[_PemFiles]:
    with tempfile.TemporaryDirectory(prefix="db-probe-") as tmp:
        os.chmod(tmp, 0o700)
        yield _PemFiles(Path(tmp))


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        original = getattr(cur, "original_exception", None)
        todo.extend([cur.__context__, cur.__cause__, original if isinstance(original, BaseException) else None])


def _error_text(exc: BaseException) -> str:
    """A readable one-liner for OS/ssl errors (whose ``str`` can be a tuple repr)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc) or type(exc).__name__


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

_PG_PREFIX = re.compile(
    r"^(?:connection failed: )?(?:connection is bad: )?"
    r"(?:connection to server (?:at|on) .*? failed: )?",
    re.IGNORECASE,
)
_PG_SEVERITY = re.compile(r"^(?:FATAL|ERROR|PANIC):\s+", re.IGNORECASE)

_PG_TLS_HINTS = (
    "server does not support ssl",
    "ssl error",
    "ssl syscall error",
    "ssl connection",
    "certificate verify failed",
    "does not match host name",
    "root certificate file",
    "certificate file",
    "private key file",
    "could not load private key",
    "could not read certificate",
    "could not open certificate",
    "server certificate",
    "sslrootcert",
    "sslmode",
    "ssl negotiation",
    "tlsv1 alert",
    "ssl alert",
)
_PG_UNREACHABLE_HINTS = (
    "connection refused",
    "failed to resolve host",
    "could not translate host name",
    "name or service not known",
    "temporary failure in name resolution",
    "no route to host",
    "network is unreachable",
    "timeout expired",
    "timed out",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
)


_PG_ATTEMPT = re.compile(r"^host: .*?, port: .*?, hostaddr: .*?: ", re.IGNORECASE)
_PG_NOISE = ("multiple connection attempts failed", "is the server running", "hint:", "detail:")


def _pg_lines(raw: str) -> list[str]:
    """The error lines of a psycopg/libpq connection failure, prefixes removed.

    psycopg reports each failed attempt (e.g. one per resolved address) on its
    own ``- host: ..., port: ..., hostaddr: ...: <error>`` line.
    """
    lines: list[str] = []
    for raw_line in raw.splitlines():
        line = _PG_ATTEMPT.sub("", raw_line.strip().removeprefix("- "))
        if not line or line.lower().startswith(_PG_NOISE):
            continue
        line = _PG_SEVERITY.sub("", _PG_PREFIX.sub("", line))
        if line:
            lines.append(line)
    return lines


def _classify_pg_line(line: str, target: PostgresTarget) -> tuple[str, str]:
    low = line.lower()
    if "pg_hba.conf" in low:
        if "no encryption" in low:
            return TLS_ERROR, (
                f"server accepts this user only over TLS, but sslmode={target.sslmode} connected without it ({line})"
            )
        return AUTHENTICATION_FAILED, f"server does not allow this connection ({line})"
    if "authentication failed" in low or "no password supplied" in low:
        if "no password supplied" in low:
            return AUTHENTICATION_FAILED, f"server requires a password for user {target.username!r}"
        return AUTHENTICATION_FAILED, line
    if re.search(r'role ".*" does not exist', low) or "is not permitted to log in" in low:
        return AUTHENTICATION_FAILED, line
    if "permission denied for database" in low:
        return AUTHENTICATION_FAILED, line
    if re.search(r'database ".*" does not exist', low):
        return DATABASE_MISSING, f"database {target.database!r} does not exist"
    if any(h in low for h in _PG_TLS_HINTS):
        return TLS_ERROR, f"TLS error (sslmode={target.sslmode}): {line}"
    if "resolve host" in low or "translate host name" in low:
        return UNREACHABLE, f"cannot resolve host {target.host!r}"
    if any(h in low for h in _PG_UNREACHABLE_HINTS):
        return UNREACHABLE, f"cannot reach {_where(target.host, target.port)}: {line}"
    return UNKNOWN, line


# Server answers beat "could not reach", which beats "no idea".
_PRIORITY: Final = {
    AUTHENTICATION_FAILED: 0,
    DATABASE_MISSING: 0,
    TLS_ERROR: 0,
    UNKNOWN: 1,
    UNREACHABLE: 2,
}


def _classify_pg_error(exc: psycopg.Error, target: PostgresTarget) -> tuple[str, str]:
    # Query-time errors (after connecting) do carry a SQLSTATE.
    state = exc.sqlstate
    if state in ("28P01", "28000"):
        return AUTHENTICATION_FAILED, f"authentication failed for user {target.username!r}"
    if state == "3D000":
        return DATABASE_MISSING, f"database {target.database!r} does not exist"
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return UNREACHABLE, f"no answer from {_where(target.host, target.port)} (connection timed out)"
    lines = _pg_lines(str(exc)) or [type(exc).__name__]
    results = [_classify_pg_line(line, target) for line in lines]
    return min(results, key=lambda r: _PRIORITY[r[0]])


def _pg_params(target: PostgresTarget, files: _PemFiles, timeout: float) -> dict[str, str | int]:
    params: dict[str, str | int] = {
        "host": target.host,
        "port": int(target.port),
        "dbname": target.database,
        "user": target.username,
        "sslmode": target.sslmode,
        # libpq counts whole seconds and treats anything below 2 as 2.
        "connect_timeout": max(2, math.ceil(timeout)),
        "gssencmode": "disable",
        "application_name": "model-registry-operator-probe",
    }
    if target.password is not None:
        params["password"] = target.password
    if target.sslmode != "disable":
        rootcert = (
            target.sslrootcert if target.sslrootcert == "system" else files.path_for(target.sslrootcert, "root.crt")
        )
        optional = {
            "sslrootcert": rootcert,
            "sslcert": files.path_for(target.sslcert, "client.crt"),
            "sslkey": files.path_for(target.sslkey, "client.key"),
            "sslpassword": target.sslpassword,
        }
        params.update({k: v for k, v in optional.items() if v})
    return params


def probe_postgres(target: PostgresTarget, timeout: float = DEFAULT_TIMEOUT) -> ProbeResult:
    """Open (and close) one connection to PostgreSQL. Blocking.

    The connect timeout is ``timeout`` rounded up to whole seconds, at least 2
    (libpq's granularity).
    """
    pw = (target.password, target.sslpassword)
    if target.sslmode not in _PG_SSLMODES:
        return _result(False, TLS_ERROR, f"unsupported sslmode {target.sslmode!r}", pw)
    where = _where(target.host, target.port)
    try:
        with _pem_files() as files:
            conninfo = psycopg.conninfo.make_conninfo("", **_pg_params(target, files, timeout))
            with psycopg.connect(conninfo) as conn:
                tls = " over TLS" if conn.pgconn.ssl_in_use else ""
    except psycopg.Error as exc:
        reason, message = _classify_pg_error(exc, target)
        return _result(False, reason, message, pw)
    except OSError as exc:  # writing the PEM files
        return _result(False, TLS_ERROR, f"cannot prepare TLS files: {_error_text(exc)}", pw)
    except Exception as exc:
        return _result(False, UNKNOWN, f"{type(exc).__name__}: {exc}", pw)
    message = f"connected to PostgreSQL at {where}, database {target.database!r}{tls}"
    return _result(True, CONNECTED, message, pw)


# ---------------------------------------------------------------------------
# MySQL / MariaDB
# ---------------------------------------------------------------------------

# MySQL server error numbers (ER_*) and client error numbers (CR_*).
_ER_DBACCESS_DENIED = 1044
_ER_ACCESS_DENIED = 1045
_ER_BAD_DB = 1049
_ER_HOST_IS_BLOCKED = 1129
_ER_HOST_NOT_PRIVILEGED = 1130
_ER_ACCESS_DENIED_NO_PASSWORD = 1698
_ER_SECURE_TRANSPORT_REQUIRED = 3159  # MySQL 5.7+/8 with require_secure_transport
_ER_SERVER_SHUTDOWN = 1053
_CR_CONNECTION_ERROR = 2002
_CR_CONN_HOST_ERROR = 2003
_CR_UNKNOWN_HOST = 2005
_CR_SERVER_GONE = 2006
_CR_SERVER_LOST = 2013
_CR_SSL_CONNECTION_ERROR = 2026
_CR_SERVER_LOST_EXTENDED = 2055

_MYSQL_UNREACHABLE_CODES: Final = frozenset(
    {
        _CR_CONNECTION_ERROR,
        _CR_CONN_HOST_ERROR,
        _CR_UNKNOWN_HOST,
        _CR_SERVER_GONE,
        _CR_SERVER_LOST,
        _CR_SERVER_LOST_EXTENDED,
        _ER_SERVER_SHUTDOWN,
    }
)


def _mysql_code(exc: BaseException) -> int | None:
    args: tuple[Any, ...] = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _mysql_text(exc: BaseException) -> str:
    args: tuple[Any, ...] = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return str(args[1])
    return str(exc) or type(exc).__name__


def _ssl_context(target: MySQLTarget, files: _PemFiles) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if target.ssl_ca:
        if _is_pem(target.ssl_ca):
            ctx.load_verify_locations(cadata=target.ssl_ca)
        elif os.path.isdir(target.ssl_ca):
            ctx.load_verify_locations(capath=target.ssl_ca)
        else:
            ctx.load_verify_locations(cafile=target.ssl_ca)
    if target.verify_server_cert:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if target.ssl_cert:
        certfile = files.path_for(target.ssl_cert, "client.crt")
        keyfile = files.path_for(target.ssl_key, "client.key")
        assert certfile is not None
        ctx.load_cert_chain(certfile, keyfile)
    if target.ssl_cipher:
        ctx.set_ciphers(target.ssl_cipher)
    return ctx


def _mysql_connection(target: MySQLTarget, timeout: float, ssl_ctx: ssl.SSLContext | None) -> Any:
    kwargs: dict[str, Any] = {
        "host": target.host,
        "port": int(target.port),
        "user": target.username,
        "password": target.password or "",
        "database": target.database,
        "connect_timeout": timeout,
        "read_timeout": timeout,
        "write_timeout": timeout,
        "defer_connect": True,
        "autocommit": True,
        "program_name": "model-registry-operator-probe",
    }
    if ssl_ctx is not None:
        kwargs["ssl"] = ssl_ctx
    else:
        kwargs["ssl_disabled"] = True
    return pymysql.connections.Connection(**kwargs)


def _connect_and_query(conn: Any) -> str:
    """Connect, run a trivial query; return the TLS cipher in use ("" without TLS)."""
    conn.connect()
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cur.fetchone()
    return str(row[1]) if row and row[1] else ""


def _server_requires_tls(target: MySQLTarget, timeout: float) -> bool:
    """After a plain-text "access denied": would the same login work over TLS?

    MariaDB answers a non-TLS client of a ``require_secure_transport`` server
    (and users created ``REQUIRE SSL``) with the same 1045 as a wrong password.
    One retry over TLS, without certificate checks, tells the two apart: it is
    never weaker than the plain-text attempt already made. (A wrong password
    thus costs two failed logins per probe on servers that offer TLS.)
    """
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = _mysql_connection(target, timeout, ctx)
    try:
        return bool(_connect_and_query(conn))
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _classify_mysql_error(exc: BaseException, target: MySQLTarget, timeout: float, server_caps: int) -> tuple[str, str]:
    where = _where(target.host, target.port)
    chain = list(_exception_chain(exc))
    for link in chain:
        if isinstance(link, ssl.SSLCertVerificationError):
            return TLS_ERROR, f"server certificate verification failed: {link.verify_message or link}"
        if isinstance(link, ssl.SSLError | ssl.CertificateError):
            return TLS_ERROR, f"TLS handshake failed: {link}"
    code = _mysql_code(exc)
    text = _mysql_text(exc)
    if code == _ER_ACCESS_DENIED:
        if (
            not target.tls_requested
            and server_caps & pymysql.constants.CLIENT.SSL
            and _server_requires_tls(target, timeout)
        ):
            return TLS_ERROR, (
                "server (or this user) requires TLS, but no TLS settings are configured "
                f"(plain-text login was refused: {text})"
            )
        if "using password: NO" in text:
            return AUTHENTICATION_FAILED, f"no password given: {text}"
        return AUTHENTICATION_FAILED, f"authentication failed: {text}"
    if code in (_ER_ACCESS_DENIED_NO_PASSWORD, _ER_HOST_NOT_PRIVILEGED, _ER_HOST_IS_BLOCKED):
        return AUTHENTICATION_FAILED, text
    if code == _ER_SECURE_TRANSPORT_REQUIRED:
        return TLS_ERROR, f"server requires TLS, but no TLS settings are configured ({text})"
    if code == _ER_BAD_DB:
        return DATABASE_MISSING, f"database {target.database!r} does not exist"
    if code == _ER_DBACCESS_DENIED:
        return DATABASE_MISSING, (
            f"database {target.database!r} does not exist or user {target.username!r} has no privileges on it ({text})"
        )
    if code == _CR_SSL_CONNECTION_ERROR:
        return TLS_ERROR, f"TLS is configured but the server does not offer it ({text})"
    for link in chain:
        if isinstance(link, socket.gaierror):
            return UNREACHABLE, f"cannot resolve host {target.host!r}"
        if isinstance(link, TimeoutError | socket.timeout):
            return UNREACHABLE, f"no answer from {where} (timed out after {timeout:g} s)"
        if isinstance(link, ConnectionRefusedError):
            return UNREACHABLE, f"connection to {where} refused"
    if code in _MYSQL_UNREACHABLE_CODES or isinstance(exc, OSError):
        return UNREACHABLE, f"cannot reach {where}: {text}"
    return UNKNOWN, f"{text}" if code is None else f"error {code}: {text}"


def probe_mysql(target: MySQLTarget, timeout: float = DEFAULT_TIMEOUT) -> ProbeResult:
    """Open one connection to MySQL/MariaDB and run a trivial query. Blocking.

    ``timeout`` bounds each network step (connect, each read, each write).
    """
    pw = (target.password,)
    where = _where(target.host, target.port)
    try:
        with _pem_files() as files:
            try:
                ctx = _ssl_context(target, files) if target.tls_requested else None
            except (ssl.SSLError, OSError, ValueError) as exc:
                return _result(False, TLS_ERROR, f"invalid TLS settings: {_error_text(exc)}", pw)
            conn = _mysql_connection(target, timeout, ctx)
            try:
                cipher = _connect_and_query(conn)
            except Exception as exc:
                caps = int(getattr(conn, "server_capabilities", 0) or 0)
                reason, message = _classify_mysql_error(exc, target, timeout, caps)
                return _result(False, reason, message, pw)
            finally:
                with contextlib.suppress(Exception):
                    conn.close()
    except Exception as exc:
        return _result(False, UNKNOWN, f"{type(exc).__name__}: {exc}", pw)
    if target.tls_requested and not cipher:
        message = f"TLS is configured but the connection to {where} is not encrypted"
        return _result(False, TLS_ERROR, message, pw)
    tls = f" over TLS ({cipher})" if cipher else ""
    message = f"connected to MySQL at {where}, database {target.database!r}{tls}"
    return _result(True, CONNECTED, message, pw)


# ---------------------------------------------------------------------------
# async entry point
# ---------------------------------------------------------------------------


async def probe(
    target: PostgresTarget | MySQLTarget,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the driver's connect timeout, not a deadline
) -> ProbeResult:
    """Probe ``target`` in a worker thread (never blocks the event loop).

    ``timeout`` is handed to the blocking driver (see :func:`probe_postgres` and
    :func:`probe_mysql`); the worker thread ends by itself once it expires.
    """
    if isinstance(target, PostgresTarget):
        return await asyncio.to_thread(probe_postgres, target, timeout)
    if isinstance(target, MySQLTarget):
        return await asyncio.to_thread(probe_mysql, target, timeout)
    raise TypeError(f"unsupported probe target: {type(target).__name__}")
