"""Rendered DSNs parsed by the registry server's own drivers (hack/dsncheck: go-sql-driver/mysql
and pgx's pgconn, the versions the server links): whatever a spec or a Secret holds, the DSN
connects to the spec's host, port, database and user, with the Secret's password and the
spec's TLS mode, and no other parameter."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from model_registry_operator.api.modelregistry import ModelRegistrySpec, MySQLConfig, PostgresConfig, RestSpec
from model_registry_operator.api.validation import parse_spec
from model_registry_operator.render.database import DatabaseSecrets, database_wiring, mysql_dsn, postgres_dsn
from tests.backends.dsncheck import parse_dsns

Obj = dict[str, Any]

# Without hack/dsncheck (built by `make deps`) these tests fail: parse_dsns names the binary.

SECRET = {"name": "db", "key": "password"}

# Values that pass validation and carry DSN syntax of either driver.
HOSTILE_NAMES = [
    "u@evil.example",
    "u/evil",
    "u?sslmode=disable",
    "u&sslmode=disable",
    "u=x",
    "u(evil)",
    "u)",
    "u%41%2F",
    "u#frag",
    "u'\"\\",
    "u;x",
    "a b",
    " lead",
    "ünïcødé-日本",
    "$(MR_EMBEDMD_DATABASE_DSN)",
    "u@tcp(evil.example)/x",
    "+",
]
HOSTILE_PASSWORDS = [
    "",
    "p@tcp(evil.example:3306)/mr?allowAllFiles=true&x=",
    "p:q:r",
    "p)/db?sslmode=disable",
    "p/q@h",
    "%",
    "%2F%40",
    "ü日本",
    " spaced out ",
    "p&sslmode=disable",
    "p\nnewline\ttab",
    "p'\"\\",
    "#",
    "$(POSTGRES_PASSWORD)",
]
HOSTS = [
    "db",
    "pg.db.svc",
    "pg.db.svc.cluster.local.",
    "DB-1.Example.COM",
    "10.1.2.3",
    "::1",
    "fe80::1:2",
    "::ffff:10.0.0.1",
]
SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


def _case_id(value: str) -> str:
    return value.encode("unicode_escape").decode()[:40] or "empty"


def _pg_cases() -> list[tuple[str, Obj, DatabaseSecrets]]:
    cases: list[tuple[str, Obj, DatabaseSecrets]] = []
    base: Obj = {"host": "pg.db.svc", "port": 5432, "database": "model_registry", "username": "mlmduser"}
    for value in HOSTILE_NAMES:
        cases.append((f"user={_case_id(value)}", {**base, "username": value}, DatabaseSecrets()))
        cases.append((f"database={_case_id(value)}", {**base, "database": value}, DatabaseSecrets()))
    for value in HOSTILE_PASSWORDS:
        cases.append(
            (f"password={_case_id(value)}", {**base, "passwordSecret": SECRET}, DatabaseSecrets(password=value))
        )
    for host in HOSTS:
        cases.append((f"host={host}", {**base, "host": host}, DatabaseSecrets()))
        cases.append((f"hostAddress={host}", {**base, "host": "ignored", "hostAddress": host}, DatabaseSecrets()))
    for mode in SSL_MODES:
        hostile = {"username": "u?sslmode=disable", "database": "d?sslmode=disable&application_name="}
        cases.append((f"sslMode={mode}", {**base, **hostile, "sslMode": mode}, DatabaseSecrets()))
    tls_files = {
        "sslCertificateSecret": {"name": "client", "key": "tls.crt"},
        "sslKeySecret": {"name": "client", "key": "tls.key"},
        "sslRootCertificateConfigMap": {"name": "ca", "key": "ca.crt"},
    }
    for mode in SSL_MODES:
        cases.append((f"sslMode={mode}+files", {**base, **tls_files, "sslMode": mode}, DatabaseSecrets()))
    cases.append(
        (
            "sslpassword",
            {
                **base,
                "sslMode": "verify-full",
                "passwordSecret": SECRET,
                "sslPasswordSecret": {"name": "k", "key": "pass"},
            },
            DatabaseSecrets(password="pw&sslmode=disable", ssl_password="k&sslmode=disable#"),
        )
    )
    cases.append(("ports", {**base, "port": 1}, DatabaseSecrets()))
    cases.append(("ports-max", {**base, "port": 65535}, DatabaseSecrets()))
    return cases


def _my_cases() -> list[tuple[str, Obj, DatabaseSecrets]]:
    cases: list[tuple[str, Obj, DatabaseSecrets]] = []
    base: Obj = {"host": "mysql.db.svc", "port": 3306, "database": "model_registry", "username": "mlmduser"}
    for value in HOSTILE_NAMES:
        database = value.rstrip(" ")
        cases.append((f"database={_case_id(value)}", {**base, "database": database}, DatabaseSecrets()))
        if ":" not in value and len(value) <= 32:
            cases.append((f"user={_case_id(value)}", {**base, "username": value}, DatabaseSecrets()))
    for value in HOSTILE_PASSWORDS:
        cases.append(
            (f"password={_case_id(value)}", {**base, "passwordSecret": SECRET}, DatabaseSecrets(password=value))
        )
        cases.append(
            (
                f"user+password={_case_id(value)}",
                {**base, "username": "u@tcp(evil.example)/x", "passwordSecret": SECRET},
                DatabaseSecrets(password=value),
            )
        )
    for host in HOSTS:
        cases.append((f"host={host}", {**base, "host": host}, DatabaseSecrets()))
    # Issue 12's MySQL example, shortened to a database name the schema takes (at most 64).
    cases.append(
        (
            "issue-example-database",
            {**base, "database": "a@tcp(evil.example:3306)/mr?allowAllFiles=true&x=", "passwordSecret": SECRET},
            DatabaseSecrets(password="real-password"),
        )
    )
    return cases


CASES = [("postgres", *case) for case in _pg_cases()] + [("mysql", *case) for case in _my_cases()]


def _pg_tls(raw: Obj) -> str:
    mode = str(raw.get("sslMode", "disable"))
    # libpq (and pgconn): require with a root certificate verifies the chain, as verify-ca.
    roots = "sslRootCertificateConfigMap" in raw or "sslRootCertificateSecret" in raw
    return "verify-ca" if mode == "require" and roots else mode


def _expected(driver: str, raw: Obj, secrets: DatabaseSecrets) -> Obj:
    password = secrets.password if "passwordSecret" in raw and secrets.password is not None else ""
    if driver == "postgres":
        return {
            "ok": True,
            "host": raw.get("hostAddress") or raw["host"],
            "port": raw["port"],
            "database": raw["database"],
            "user": raw["username"],
            "password": password,
            "tls": _pg_tls(raw),
            "params": {},
        }
    return {
        "ok": True,
        "host": raw["host"],
        "port": raw["port"],
        "database": raw["database"],
        "user": raw["username"],
        "password": password,
        "tls": "",
        "params": {"charset": "utf8mb4"},
    }


@pytest.fixture(scope="module")
def parsed() -> dict[str, Obj]:
    """Every case rendered, then parsed by the drivers in one batch."""
    items: list[tuple[str, str]] = []
    for driver, _id, raw, secrets in CASES:
        spec, problems = parse_spec({"rest": {}, driver: raw})
        assert spec is not None, (_id, problems)  # every hostile value here is one the schema takes
        wiring = database_wiring("reg", spec, secrets)
        items.append((wiring.type, wiring.dsn))
    results = parse_dsns(items)
    return {f"{driver}:{case_id}": result for (driver, case_id, _r, _s), result in zip(CASES, results, strict=True)}


@pytest.mark.parametrize(("driver", "case_id", "raw", "secrets"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_rendered_dsn_parses_to_the_spec(
    parsed: dict[str, Obj], driver: str, case_id: str, raw: Obj, secrets: DatabaseSecrets
) -> None:
    assert parsed[f"{driver}:{case_id}"] == _expected(driver, raw, secrets)


def test_issue_example_mysql_database_injection_keeps_host_and_params() -> None:
    """Issue 12: `mysql.database: "a@tcp(evil.example:3306)/mr?allowCleartextPasswords=true&allowAllFiles=true&x="`
    used to connect to evil.example with the real password and allowAllFiles. The schema now
    refuses it (65+ characters); a stored object that skipped the schema still renders a DSN to
    the real host, with the whole value as the database name and no extra parameter."""
    database = "a@tcp(evil.example:3306)/mr?allowCleartextPasswords=true&allowAllFiles=true&x="
    spec, problems = parse_spec({"rest": {}, "mysql": {"host": "db", "username": "u", "database": database}})
    assert spec is None
    assert [p.field for p in problems] == ["spec.mysql.database"]
    unchecked = MySQLConfig.model_construct(
        host="db", port=3306, username="u", database=database, password_secret=SECRET
    )
    dsn = mysql_dsn(unchecked, DatabaseSecrets(password="real-password"))
    [result] = parse_dsns([("mysql", dsn)])
    assert result == {
        "ok": True,
        "host": "db",
        "port": 3306,
        "database": database,
        "user": "u",
        "password": "real-password",
        "tls": "",
        "params": {"charset": "utf8mb4"},
    }


def test_issue_example_postgres_host_injection_keeps_tls() -> None:
    """Issue 12: `postgres.host: "pg.db.svc/model_registry?sslmode=disable&application_name="` with
    sslMode verify-full used to give a DSN with TLS off. The schema refuses the host (naming
    the field), and the DSN builder refuses it too for an object that skipped the schema."""
    host = "pg.db.svc/model_registry?sslmode=disable&application_name="
    raw: Obj = {"host": host, "database": "model_registry", "username": "u", "sslMode": "verify-full"}
    spec, problems = parse_spec({"rest": {}, "postgres": raw})
    assert spec is None
    assert [p.field for p in problems] == ["spec.postgres.host"]
    assert "RFC 1123 host name" in problems[0].message
    unchecked = PostgresConfig.model_construct(
        host=host, host_address=None, port=5432, username="u", database="model_registry", ssl_mode="verify-full"
    )
    with pytest.raises(ValueError, match=r"spec\.postgres\.host"):
        postgres_dsn(unchecked, DatabaseSecrets())
    # The same syntax where the schema takes it (user, database) cannot turn TLS off either.
    spec, problems = parse_spec(
        {"rest": {}, "postgres": {**raw, "host": "pg.db.svc", "database": "m?sslmode=disable&application_name="}}
    )
    assert spec is not None, problems
    [result] = parse_dsns([("postgres", database_wiring("reg", spec, DatabaseSecrets()).dsn)])
    assert result["ok"], result
    assert (result["host"], result["tls"], result["params"]) == ("pg.db.svc", "verify-full", {})
    assert result["database"] == "m?sslmode=disable&application_name="


@pytest.mark.parametrize("mode", ["verify-full", "disable"])
def test_postgres_tls_files_do_not_change_the_spec_ssl_mode(mode: str) -> None:
    """Certificate files are DSN parameters, not the server's flags (given one, the registry
    server v0.3 sets sslmode=require: verify-full would lose its host name check)."""
    raw: Obj = {
        **{"host": "pg.db.svc", "database": "model_registry", "username": "mlmduser", "sslMode": mode},
        "sslCertificateSecret": {"name": "client", "key": "tls.crt"},
        "sslKeySecret": {"name": "client", "key": "tls.key"},
        "sslRootCertificateSecret": {"name": "ca", "key": "ca.crt"},
    }
    spec, problems = parse_spec({"rest": {}, "postgres": raw})
    assert spec is not None, problems
    wiring = database_wiring("reg", spec, DatabaseSecrets())
    assert not [a for a in wiring.args if a.startswith("--embedmd-database-ssl")]
    [result] = parse_dsns([("postgres", wiring.dsn)])
    assert result["tls"] == mode
    query = parse_qs(urlsplit(wiring.dsn).query)
    assert query["sslrootcert"] == ["/etc/postgres_ssl_rootcert/ca.crt"]
    assert query["sslcert"] == ["/etc/postgres_ssl_cert/tls.crt"]
    assert query["sslkey"] == ["/etc/postgres_ssl_key/tls.key"]
    assert {m["mountPath"] for m in wiring.volume_mounts} == {
        "/etc/postgres_ssl_rootcert",
        "/etc/postgres_ssl_cert",
        "/etc/postgres_ssl_key",
    }


def test_mysql_user_with_colon_cannot_reach_the_dsn() -> None:
    """go-sql-driver has no escape for ':' in a user name: refused by the schema and the builder."""
    spec, problems = parse_spec({"rest": {}, "mysql": {"host": "db", "username": "u:x", "database": "d"}})
    assert spec is None
    assert [p.field for p in problems] == ["spec.mysql.username"]
    unchecked = ModelRegistrySpec.model_construct(
        rest=RestSpec(),
        mysql=MySQLConfig.model_construct(host="db", port=3306, username="u:x", database="d", password_secret=None),
    )
    with pytest.raises(ValueError, match=r"spec\.mysql\.username"):
        database_wiring("reg", unchecked, DatabaseSecrets())
