"""What the database drivers make of a rendered DSN.

``tests/backends/dsncheck.py`` parses DSNs with the registry server's own Go drivers
(go-sql-driver/mysql, pgx's pgconn). Until that module is there, a port of the same drivers'
parsing rules stands in (``_mysql`` / ``_postgres`` below, from ``mysql.ParseDSN`` and Go's
``net/url`` + ``pgconn.ParseConfig``). When the module is there it is always used, and whatever
it raises (its binary missing, say) fails the test: nothing here catches it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

Parsed = dict[str, Any]

_real: Callable[[list[tuple[str, str]]], list[Parsed]] | None = None
if importlib.util.find_spec("tests.backends.dsncheck") is not None:
    _real = importlib.import_module("tests.backends.dsncheck").parse_dsns

CHECKER = "tests/backends/dsncheck.py (the Go drivers)" if _real else "the drivers' rules ported in tests/fuzz/dsn.py"


def parse_dsns(items: list[tuple[str, str]]) -> list[Parsed]:
    """``[(driver, dsn)]`` -> ``{"ok": True, host, port, database, user, password, tls, params}`` or
    ``{"ok": False, "error"}`` for each."""
    if _real is not None:
        return _real(items)
    return [(_mysql if driver == "mysql" else _postgres)(dsn) for driver, dsn in items]


def _fail(error: str) -> Parsed:
    return {"ok": False, "error": error}


def _split_host_port(addr: str, default: int) -> tuple[str, int] | str:
    """Go's ``net.SplitHostPort`` (a missing port gets the default, as both drivers do)."""
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            return f"missing ']' in address {addr!r}"
        host, rest = addr[1:end], addr[end + 1 :]
        if not rest:
            return host, default
        if not rest.startswith(":"):
            return f"bad address {addr!r}"
        port_text = rest[1:]
    elif addr.count(":") > 1:
        return f"too many colons in address {addr!r}"
    elif ":" in addr:
        host, port_text = addr.split(":")
    else:
        return addr, default
    if not port_text.isascii() or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        return f"invalid port {port_text!r}"
    return host, int(port_text)


def _mysql(dsn: str) -> Parsed:
    """go-sql-driver/mysql ``ParseDSN``: ``[user[:password]@][net[(addr)]]/dbname[?params]``."""
    user = password = net = addr = ""
    params: dict[str, str] = {}
    slash = dsn.rfind("/")
    if slash < 0:
        return _fail("invalid DSN: missing the slash separating the database name")
    left = dsn[:slash]
    at = left.rfind("@")
    if at >= 0:
        credentials = left[:at]
        user, _, password = credentials.partition(":")
    rest = left[at + 1 :]
    paren = rest.find("(")
    if paren >= 0:
        if not rest.endswith(")"):
            return _fail("invalid DSN: network address not terminated (missing closing brace)")
        net, addr = rest[:paren], rest[paren + 1 : -1]
    else:
        net = rest
    name, _, query = dsn[slash + 1 :].partition("?")
    for part in query.split("&") if query else []:
        key, found, value = part.partition("=")
        if not found:
            continue
        params[key] = unquote(value)
    try:
        database = unquote(name, errors="strict")
    except UnicodeDecodeError as exc:
        return _fail(f"invalid dbname {name!r}: {exc}")
    if net not in ("", "tcp"):
        return _fail(f"network {net!r}, not tcp")
    split = _split_host_port(addr or "127.0.0.1:3306", 3306)
    if isinstance(split, str):
        return _fail(split)
    host, port = split
    tls = params.get("tls", "")
    return {
        "ok": True,
        "host": host,
        "port": port,
        "database": database,
        "user": user,
        "password": password,
        "tls": tls,
        "params": params,
    }


# pgconn settings that are connection parameters; any other key is sent to the server as a run-time parameter.
_PG_SETTINGS = {
    "host",
    "port",
    "database",
    "user",
    "password",
    "passfile",
    "connect_timeout",
    "sslmode",
    "sslkey",
    "sslcert",
    "sslrootcert",
    "sslpassword",
    "sslsni",
    "sslnegotiation",
    "krbspn",
    "krbsrvname",
    "target_session_attrs",
    "service",
    "servicefile",
    "min_read_buffer_size",
    "dbname",
}
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


def _postgres(dsn: str) -> Parsed:
    """pgx ``pgconn.ParseConfig`` of a URL (Go ``net/url``) or a keyword/value string."""
    url = dsn.startswith(("postgres://", "postgresql://"))
    settings = _postgres_url(dsn) if url else _postgres_keywords(dsn)
    if isinstance(settings, str):
        return _fail(settings)
    tls = settings.get("sslmode", "prefer")
    if tls not in _SSL_MODES:
        return _fail(f"sslmode is invalid: {tls!r}")
    split = _split_host_port(settings.get("hostport", settings.get("host", "")), int(settings.get("port") or 5432))
    if isinstance(split, str):
        return _fail(split)
    host, port = split
    return {
        "ok": True,
        "host": host,
        "port": port,
        "database": settings.get("database", settings.get("dbname", "")),
        "user": settings.get("user", ""),
        "password": settings.get("password", ""),
        "tls": tls,
        "params": {k: v for k, v in settings.items() if k not in _PG_SETTINGS and k != "hostport"},
    }


def _postgres_url(dsn: str) -> dict[str, str] | str:
    rest, _, _fragment = dsn.partition("#")
    rest = rest.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    settings: dict[str, str] = {}
    at = authority.rfind("@")
    if at >= 0:
        userinfo, authority = authority[:at], authority[at + 1 :]
        user, colon, password = userinfo.partition(":")
        settings["user"] = unquote(user)
        if colon:
            settings["password"] = unquote(password)
    if "," in authority:
        return "several hosts: not what the operator renders"
    settings["hostport"] = unquote(authority)
    if slash:
        settings["database"] = unquote(path).lstrip("/")
    if ";" in query:
        return "invalid semicolon separator in query"
    for part in query.split("&") if query else []:
        key, _, value = part.partition("=")
        key, value = unquote(key.replace("+", " ")), unquote(value.replace("+", " "))
        settings.setdefault(key if key != "dbname" else "database", value)  # url.Values: the first value wins
    return settings


def _postgres_keywords(dsn: str) -> dict[str, str] | str:
    settings: dict[str, str] = {}
    s = dsn.strip()
    while s:
        key, eq, s = s.partition("=")
        key = key.strip()
        if not eq or not key or " " in key:
            return f"invalid keyword/value near {key!r}"
        s = s.lstrip()
        value = ""
        if s.startswith("'"):
            s = s[1:]
            while True:
                if not s:
                    return "unterminated quoted string in connection info string"
                if s[0] == "\\" and len(s) > 1:
                    value, s = value + s[1], s[2:]
                elif s[0] == "'":
                    s = s[1:]
                    break
                else:
                    value, s = value + s[0], s[1:]
        else:
            while s and s[0] != " ":
                if s[0] == "\\" and len(s) > 1:
                    value, s = value + s[1], s[2:]
                else:
                    value, s = value + s[0], s[1:]
        settings["database" if key == "dbname" else key] = value
        s = s.lstrip()
    if "host" in settings:
        settings["hostport"] = settings.pop("host")
        if ":" in settings["hostport"] and not settings["hostport"].startswith("["):
            settings["hostport"] = f"[{settings['hostport']}]"
    return settings
