"""Throwaway PostgreSQL and MariaDB servers for tests.

Each server lives in its own temporary directory, listens on a free port on
127.0.0.1 only, and is removed again by :meth:`stop` (or on leaving the
``with`` block). Nothing touches the system clusters or ``/etc``.

When running as root the servers run as the ``postgres`` / ``mysql`` system
users (PostgreSQL refuses to run as root, MariaDB needs ``--user``); as any
other user they run as that user.

Startup is bounded (``ready_timeout``, at most 60 s) and fails with
:class:`ServerStartError` whose message ends with the tail of the server log.
A missing server binary raises :class:`MissingServerBinaryError` ("run make
deps").
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import psycopg
import pymysql
from psycopg import sql

LOOPBACK = "127.0.0.1"
MAX_READY_TIMEOUT = 60.0
DEFAULT_PASSWORD = "registry-secret-pw"
_LOG_TAIL_LINES = 40
_PORT_ATTEMPTS = 3


class ServerStartError(RuntimeError):
    """A test database server could not be started."""


class MissingServerBinaryError(ServerStartError):
    """A server binary is not installed."""


@dataclass(frozen=True)
class ServerTLS:
    """TLS material for a test server.

    ``required``: reject clients that do not use TLS (PostgreSQL: ``hostssl``
    lines only; MariaDB: ``require_secure_transport=ON``).
    ``ca_pem``: CA used to verify client certificates, if any are presented.
    """

    cert_pem: str
    key_pem: str = field(repr=False)
    ca_pem: str | None = None
    required: bool = True


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _is_root() -> bool:
    return os.geteuid() == 0


def _as_user(user: str, argv: list[str]) -> list[str]:
    """Run ``argv`` as the service ``user`` when we are root, else as ourselves."""
    if _is_root():
        return ["runuser", "-u", user, "--", *argv]
    return argv


def _chown_tree(path: Path, user: str) -> None:
    if not _is_root():
        return
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log at {path}: {exc.strerror})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(server log is empty)"


def _check_user(user: str) -> None:
    if not _is_root():
        return
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise MissingServerBinaryError(
            f"system user {user!r} does not exist: the database server packages are not installed; run make deps"
        ) from None


class _ServerBase:
    """Shared life-cycle: temp dir, port choice, context manager, files, tools."""

    service_user = ""
    name = ""
    scheme = ""  # of the DSN

    def __init__(
        self,
        *,
        user: str = "registry",
        password: str = DEFAULT_PASSWORD,
        database: str = "model_registry",
        tls: ServerTLS | None = None,
        ready_timeout: float = MAX_READY_TIMEOUT,
        keep_dir: bool = False,
    ) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
        self.ready_timeout = min(ready_timeout, MAX_READY_TIMEOUT)
        self.keep_dir = keep_dir
        self.base_dir: Path | None = None
        self.startup_seconds = 0.0
        self._running = False

    # -- life cycle -------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} db={self.database!r} {state}>"

    def start(self) -> None:
        if self._running:
            return
        self._check_binaries()
        started = time.monotonic()
        self.base_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-test-"))
        self.base_dir.chmod(0o755)
        try:
            self._init()
            for attempt in range(_PORT_ATTEMPTS):
                self.port = free_port()
                try:
                    self._launch()
                    break
                except ServerStartError as exc:
                    self._cleanup_process()
                    if attempt + 1 < _PORT_ATTEMPTS and "in use" in str(exc).lower():
                        continue
                    raise
            self._running = True
            self._create_user_and_database()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        if not self._running and self.base_dir is None:
            return
        try:
            self._cleanup_process()
        finally:
            self._running = False
            if self.base_dir is not None and not self.keep_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    @property
    def log_path(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "server.log"

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)

    @property
    def dsn(self) -> str:
        return (
            f"{self.scheme}://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{quote(self.database, safe='')}"
        )

    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "data"

    @property
    def tls_dir(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "tls"

    def _fail(self, what: str) -> ServerStartError:
        return ServerStartError(f"{self.name}: {what}\n--- server log tail ({self.log_path}) ---\n{self.log_tail()}")

    def _prepare(self, *dirs: Path) -> None:
        """Create ``dirs``, the log and the TLS files, all owned by the service user."""
        assert self.base_dir is not None
        for path in dirs:
            path.mkdir()
        self.log_path.touch()
        if self.tls is not None:
            self.tls_dir.mkdir()
            (self.tls_dir / "server.crt").write_text(self.tls.cert_pem)
            _write_private(self.tls_dir / "server.key", self.tls.key_pem)
            if self.tls.ca_pem:
                (self.tls_dir / "ca.crt").write_text(self.tls.ca_pem)
        _chown_tree(self.base_dir, self.service_user)

    def _run(self, argv: list[str], what: str, timeout: float) -> None:
        """Run a server tool to completion; a failure carries its output and the server log."""
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise self._fail(f"{what} did not finish within {timeout:.0f} s") from None
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).strip()[-2000:]
            raise self._fail(f"{what} failed (exit {proc.returncode}):\n{out}")

    # -- to implement ----------------------------------------------------
    def _check_binaries(self) -> None:
        raise NotImplementedError

    def _init(self) -> None:
        raise NotImplementedError

    def _launch(self) -> None:
        raise NotImplementedError

    def _cleanup_process(self) -> None:
        raise NotImplementedError

    def _create_user_and_database(self) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """Directory holding ``initdb``/``pg_ctl``: ``$PG_BINDIR``, else the newest Debian one."""
    env = os.environ.get("PG_BINDIR")
    if env:
        return Path(env)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise MissingServerBinaryError("PostgreSQL server binaries (initdb, pg_ctl) not found; run make deps")


class PostgresServer(_ServerBase):
    """A throwaway PostgreSQL cluster.

    Superuser ``postgres`` (trust, Unix socket in the temp dir only); the test
    role ``user``/``password`` (scram-sha-256 on 127.0.0.1) owns ``database``.
    With ``tls`` the server enables SSL; with ``tls.required`` pg_hba only has
    ``hostssl`` lines, so a client without TLS gets "no pg_hba.conf entry ...
    no encryption".
    """

    service_user = "postgres"
    name = "postgresql"
    scheme = "postgresql"
    _bindir: Path | None = None

    @property
    def socket_dir(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "sock"

    def _bin(self, name: str) -> str:
        assert self._bindir is not None
        return str(self._bindir / name)

    def _check_binaries(self) -> None:
        self._bindir = postgres_bindir()
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (self._bindir / tool).exists():
                raise MissingServerBinaryError(f"PostgreSQL binary {self._bindir / tool} not found; run make deps")
        _check_user(self.service_user)
        if _is_root() and shutil.which("runuser") is None:
            raise MissingServerBinaryError("runuser (util-linux) not found; run make deps")

    def _run(self, argv: list[str], what: str, timeout: float) -> None:
        # PostgreSQL refuses to run as root: its tools run as the service user.
        super()._run(_as_user(self.service_user, argv), what, timeout)

    def _init(self) -> None:
        # initdb creates the data directory itself.
        self._prepare(self.socket_dir)
        tls_dir = self.tls_dir
        self._run(
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            "initdb",
            timeout=MAX_READY_TIMEOUT,
        )
        conf = [
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.socket_dir}'",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "max_connections = 30",
            "shared_buffers = 16MB",
            "lc_messages = 'C'",
            "log_connections = on",
            "password_encryption = 'scram-sha-256'",
        ]
        if self.tls is not None:
            conf += [
                "ssl = on",
                f"ssl_cert_file = '{tls_dir / 'server.crt'}'",
                f"ssl_key_file = '{tls_dir / 'server.key'}'",
            ]
            if self.tls.ca_pem:
                conf.append(f"ssl_ca_file = '{tls_dir / 'ca.crt'}'")
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write("\n# test server settings\n" + "\n".join(conf) + "\n")
        host_kind = "hostssl" if self.tls is not None and self.tls.required else "host"
        hba = [
            "local all all trust",
            f"{host_kind} all all 127.0.0.1/32 scram-sha-256",
        ]
        (self.data_dir / "pg_hba.conf").write_text("\n".join(hba) + "\n")

    def _launch(self) -> None:
        self.log_path.write_text("")
        self._run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-o",
                f"-p {self.port}",
                "-w",
                "-t",
                str(int(self.ready_timeout)),
                "start",
            ],
            "pg_ctl start",
            timeout=self.ready_timeout + 10,
        )

    def _cleanup_process(self) -> None:
        if self.base_dir is None or not (self.data_dir / "postmaster.pid").exists():
            return
        try:
            self._run(
                [self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"],
                "pg_ctl stop",
                timeout=40,
            )
            return
        except ServerStartError:
            pass
        pid_file = self.data_dir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)

    def admin_connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[Any, ...]]:
        """Superuser connection over the Unix socket (autocommit)."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname=dbname,
            autocommit=True,
            connect_timeout=10,
        )

    def _create_user_and_database(self) -> None:
        with self.admin_connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(self.password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(self.database), sql.Identifier(self.user))
            )


# ---------------------------------------------------------------------------
# MariaDB
# ---------------------------------------------------------------------------


def _find_mariadb_tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not found:
        raise MissingServerBinaryError(f"MariaDB binary {name!r} not found; run make deps")
    return found


class MariaDBServer(_ServerBase):
    """A throwaway MariaDB server.

    Admin access is through the Unix socket in the temp dir only (unix_socket
    authentication for the OS user running the tests); the test account
    ``user``@``%`` / ``password`` has all privileges on ``database``. With
    ``tls`` the server loads the certificate; with ``tls.required`` it sets
    ``require_secure_transport=ON``.
    """

    service_user = "mysql"
    name = "mariadb"
    scheme = "mysql"
    _proc: subprocess.Popen[bytes] | None = None

    @functools.cached_property
    def _admin_user(self) -> str:
        # Fixed on first use: mariadb-install-db grants socket access to this OS user.
        return "root" if _is_root() else getpass.getuser()

    @property
    def socket_path(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "mysqld.sock"

    def _check_binaries(self) -> None:
        self._mariadbd = _find_mariadb_tool("mariadbd")
        self._install_db = _find_mariadb_tool("mariadb-install-db")
        _check_user(self.service_user)

    def _user_args(self) -> list[str]:
        return [f"--user={self.service_user}"] if _is_root() else []

    def _init(self) -> None:
        self._prepare(self.data_dir)
        argv = [
            self._install_db,
            "--no-defaults",
            *self._user_args(),
            f"--datadir={self.data_dir}",
            "--auth-root-authentication-method=socket",
            f"--auth-root-socket-user={self._admin_user}",
            "--skip-test-db",
            "--skip-name-resolve",
        ]
        # Runs as ourselves: with --user it drops to the service user on its own.
        self._run(argv, "mariadb-install-db", timeout=MAX_READY_TIMEOUT)

    def _launch(self) -> None:
        assert self.base_dir is not None
        self.log_path.write_text("")
        _chown_tree(self.log_path, self.service_user)
        argv = [
            self._mariadbd,
            "--no-defaults",
            *self._user_args(),
            f"--datadir={self.data_dir}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.base_dir / 'mysqld.pid'}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--log-error={self.log_path}",
            "--innodb-buffer-pool-size=32M",
            "--innodb-flush-log-at-trx-commit=0",
            "--skip-innodb-doublewrite",
            "--max-connections=50",
        ]
        if self.tls is not None:
            tls_dir = self.tls_dir
            argv += [f"--ssl-cert={tls_dir / 'server.crt'}", f"--ssl-key={tls_dir / 'server.key'}"]
            if self.tls.ca_pem:
                argv.append(f"--ssl-ca={tls_dir / 'ca.crt'}")
            if self.tls.required:
                argv.append("--require-secure-transport=ON")
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.ready_timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise self._fail(f"mariadbd exited with code {self._proc.returncode} during startup")
            if self.socket_path.exists():
                try:
                    self.admin_connect(timeout=2).close()
                    if self._tcp_open():
                        return
                except pymysql.err.MySQLError as exc:
                    last_error = str(exc)
            time.sleep(0.1)
        raise self._fail(f"mariadbd not ready within {self.ready_timeout:.0f} s (last error: {last_error})")

    def _tcp_open(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def _cleanup_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def admin_connect(self, timeout: float = 10) -> Any:
        """Admin connection over the Unix socket (autocommit)."""
        return pymysql.connect(
            unix_socket=str(self.socket_path),
            user=self._admin_user,
            connect_timeout=timeout,
            autocommit=True,
        )

    def admin_execute(self, *statements: str) -> None:
        conn = self.admin_connect()
        try:
            with conn.cursor() as cur:
                for stmt in statements:
                    cur.execute(stmt)
        finally:
            conn.close()

    def _create_user_and_database(self) -> None:
        conn = self.admin_connect()
        try:
            with conn.cursor() as cur:
                db = "`" + self.database.replace("`", "``") + "`"
                cur.execute(f"CREATE DATABASE {db}")
                cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (self.user, self.password))
                cur.execute(f"GRANT ALL PRIVILEGES ON {db}.* TO %s@'%%'", (self.user,))
        finally:
            conn.close()
