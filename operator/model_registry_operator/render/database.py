"""How the registry container reaches its database: DSN, flags, mounts. Pure functions.

The DSN, with its credentials, goes into a Secret read through the ``MR_EMBEDMD_DATABASE_DSN``
env var (the server reads every flag from an ``MR_`` variable), so the password is in
neither the pod spec nor the process arguments. Each DSN is built by its driver's own
grammar (see ``postgres_dsn`` / ``mysql_dsn``); every flag goes through ``no_expansion``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from ..api.common import HOST_PATTERN, MYSQL_USER_PATTERN, RULES, SecretKeyValue
from ..api.modelregistry import ModelRegistrySpec, MySQLConfig, PostgresConfig
from .escaping import no_expansion

HOST = re.compile(HOST_PATTERN)


@dataclass(frozen=True)
class DatabaseWiring:
    type: str
    dsn: str
    args: list[str]
    secret_name: str
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DatabaseSecrets:
    """Values the reconcile read from the Secrets the spec references."""

    password: str | None = None
    ssl_password: str | None = None


def connection_secret_name(registry_name: str) -> str:
    return f"{registry_name}-db-connection"


def _mount(
    volume: str, path: str, ref: SecretKeyValue, *, config_map: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    items = [{"key": ref.key, "path": ref.key}]
    source: dict[str, Any]
    if config_map:
        source = {"configMap": {"name": ref.name, "items": items, "defaultMode": 0o440}}
    else:
        source = {"secret": {"secretName": ref.name, "items": items, "defaultMode": 0o440}}
    return {"name": volume, **source}, {"name": volume, "mountPath": path, "readOnly": True}


def _dsn_host(field: str, host: str) -> str:
    """A validated host for a DSN; an IPv6 address in brackets.

    The schema admits only host names and IP addresses; this check keeps a value that skipped
    validation (an object stored before the rules) from carrying DSN syntax.
    """
    if not HOST.fullmatch(host):
        raise ValueError(f"{field}: {RULES[HOST_PATTERN]}")
    return f"[{host}]" if ":" in host else host


def postgres_dsn(pg: PostgresConfig, secrets: DatabaseSecrets, files: dict[str, str] | None = None) -> str:
    """A URL DSN (the registry server rewrites URL DSNs with Go's net/url, then pgx parses them).

    User, password and database are percent-encoded, every parameter query-encoded, the host is
    checked: no value can move the connection or change its parameters (sslmode included).
    ``files`` are the TLS file parameters (sslcert, sslkey, sslrootcert -> mounted path).
    """
    credentials = quote(pg.username or "", safe="")
    if secrets.password is not None and pg.password_secret is not None:
        credentials += ":" + quote(secrets.password, safe="")
    field = "spec.postgres.hostAddress" if pg.host_address else "spec.postgres.host"
    host = _dsn_host(field, pg.address)
    params: dict[str, str] = {"sslmode": pg.ssl_mode}
    params.update(files or {})
    if secrets.ssl_password is not None and pg.ssl_password_secret is not None:
        params["sslpassword"] = secrets.ssl_password
    userinfo = f"{credentials}@" if credentials else ""
    database = quote(pg.database or "", safe="")
    return f"postgresql://{userinfo}{host}:{pg.port}/{database}?{urlencode(params, quote_via=quote)}"


def mysql_dsn(my: MySQLConfig, secrets: DatabaseSecrets) -> str:
    """A go-sql-driver/mysql DSN: `user[:password]@tcp(host:port)/database?charset=utf8mb4`.

    The driver (dsn.go) splits at the last `/` (database after it, up to the first `?`), then at
    the last `@` before it (credentials before), and the user from the password at the first
    `:`. So the database is path-escaped (the driver unescapes it), the password needs no escape
    (any byte sits between that `:` and that `@`), the host is checked and the user may not hold
    a `:` (the schema refuses it; the driver has no escape for it).
    """
    if ":" in my.username:
        raise ValueError(f"spec.mysql.username: {RULES[MYSQL_USER_PATTERN]}")
    credentials = my.username
    if secrets.password is not None and my.password_secret is not None:
        credentials += ":" + secrets.password
    host = _dsn_host("spec.mysql.host", my.host)
    return f"{credentials}@tcp({host}:{my.port})/{quote(my.database, safe='')}?charset=utf8mb4"


class _Wiring:
    """Collects flags, volumes and mounts while a wiring is built."""

    def __init__(self, db_type: str) -> None:
        self.args = [f"--embedmd-database-type={db_type}"]
        self.volumes: list[dict[str, Any]] = []
        self.mounts: list[dict[str, Any]] = []

    def file(self, flag: str | None, volume: str, path: str, ref: SecretKeyValue, *, config_map: bool = False) -> str:
        """Mount one key; pass its path as ``flag`` when given. Returns the file's path."""
        vol, mount = _mount(volume, path, ref, config_map=config_map)
        self.volumes.append(vol)
        self.mounts.append(mount)
        if flag is not None:
            self.args.append(no_expansion(f"{flag}={path}/{ref.key}"))
        return f"{path}/{ref.key}"

    def root_cert(
        self, prefix: str, config_map: SecretKeyValue | None, secret: SecretKeyValue | None, *, flag: bool = True
    ) -> str | None:
        """The CA file: a ConfigMap wins over a Secret, as upstream."""
        ref = config_map or secret
        if ref is None:
            return None
        return self.file(
            "--embedmd-database-ssl-root-cert" if flag else None,
            f"{prefix}-ssl-rootcert",
            f"/etc/{prefix}_ssl_rootcert",
            ref,
            config_map=config_map is not None,
        )


def _postgres_wiring(name: str, pg: PostgresConfig, secrets: DatabaseSecrets) -> DatabaseWiring:
    """The TLS files go into the DSN (sslcert, sslkey, sslrootcert), not the server's flags: given
    any of those flags, the registry server (v0.3) overwrites the DSN's sslmode with `require`,
    which turns a spec's verify-full into verify-ca (no host name check) and disable into TLS."""
    w = _Wiring("postgres")
    files: dict[str, str] = {}
    if pg.ssl_certificate_secret:
        files["sslcert"] = w.file(None, "postgres-ssl-cert", "/etc/postgres_ssl_cert", pg.ssl_certificate_secret)
    if pg.ssl_key_secret:
        files["sslkey"] = w.file(None, "postgres-ssl-key", "/etc/postgres_ssl_key", pg.ssl_key_secret)
    root = w.root_cert("postgres", pg.ssl_root_certificate_config_map, pg.ssl_root_certificate_secret, flag=False)
    if root is not None:
        files["sslrootcert"] = root
    return DatabaseWiring(
        "postgres", postgres_dsn(pg, secrets, files), w.args, connection_secret_name(name), w.volumes, w.mounts
    )


def _mysql_wiring(name: str, my: MySQLConfig, secrets: DatabaseSecrets) -> DatabaseWiring:
    w = _Wiring("mysql")
    if my.ssl_certificate_secret:
        w.file("--embedmd-database-ssl-cert", "mysql-ssl-cert", "/etc/mysql_ssl_cert", my.ssl_certificate_secret)
    if my.ssl_key_secret:
        w.file("--embedmd-database-ssl-key", "mysql-ssl-key", "/etc/mysql_ssl_key", my.ssl_key_secret)
    w.root_cert("mysql", my.ssl_root_certificate_config_map, my.ssl_root_certificate_secret)
    ca_dir: dict[str, Any] | None = None
    if my.ssl_root_certificates_config_map_name:
        ca_dir = {"configMap": {"name": my.ssl_root_certificates_config_map_name, "defaultMode": 0o440}}
    elif my.ssl_root_certificates_secret_name:
        ca_dir = {"secret": {"secretName": my.ssl_root_certificates_secret_name, "defaultMode": 0o440}}
    if ca_dir is not None:
        w.volumes.append({"name": "mysql-ssl-rootcerts", **ca_dir})
        w.mounts.append({"name": "mysql-ssl-rootcerts", "mountPath": "/etc/mysql_ssl_rootcerts", "readOnly": True})
        w.args.append("--embedmd-database-ssl-ca=/etc/mysql_ssl_rootcerts/")
    if my.ssl_cipher:
        w.args.append(no_expansion(f"--embedmd-database-ssl-cipher={my.ssl_cipher}"))
    if my.verify_server_cert:
        w.args.append("--embedmd-database-ssl-verify-server-cert=true")
    return DatabaseWiring("mysql", mysql_dsn(my, secrets), w.args, connection_secret_name(name), w.volumes, w.mounts)


def database_wiring(name: str, spec: ModelRegistrySpec, secrets: DatabaseSecrets) -> DatabaseWiring:
    """Wiring for whichever database the (validated, defaulted) spec names."""
    if spec.postgres is not None:
        return _postgres_wiring(name, spec.postgres, secrets)
    if spec.mysql is not None:
        return _mysql_wiring(name, spec.mysql, secrets)
    raise ValueError("spec names no database")


def referenced_keys(spec: ModelRegistrySpec) -> list[tuple[str, SecretKeyValue | str]]:
    """Every Secret / ConfigMap the database settings read, as ("secret"|"configmap", ref).

    A bare name (str) stands for a whole object mounted as a directory.
    """
    refs: list[tuple[str, SecretKeyValue | str]] = []
    if spec.postgres is not None:
        pg = spec.postgres
        for secret_ref in (
            pg.password_secret,
            pg.ssl_certificate_secret,
            pg.ssl_key_secret,
            pg.ssl_password_secret,
            pg.ssl_root_certificate_secret,
        ):
            if secret_ref is not None:
                refs.append(("secret", secret_ref))
        if pg.ssl_root_certificate_config_map is not None:
            refs.append(("configmap", pg.ssl_root_certificate_config_map))
    if spec.mysql is not None:
        my = spec.mysql
        for secret_ref in (
            my.password_secret,
            my.ssl_certificate_secret,
            my.ssl_key_secret,
            my.ssl_root_certificate_secret,
        ):
            if secret_ref is not None:
                refs.append(("secret", secret_ref))
        if my.ssl_root_certificate_config_map is not None:
            refs.append(("configmap", my.ssl_root_certificate_config_map))
        if my.ssl_root_certificates_config_map_name:
            refs.append(("configmap", my.ssl_root_certificates_config_map_name))
        if my.ssl_root_certificates_secret_name:
            refs.append(("secret", my.ssl_root_certificates_secret_name))
    return refs
