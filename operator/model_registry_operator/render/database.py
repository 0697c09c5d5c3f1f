"""How the registry container reaches its database: DSN, flags, mounts. Pure functions.

The DSN, with its credentials, goes into a Secret read through the ``MR_EMBEDMD_DATABASE_DSN``
env var (the server reads every flag from an ``MR_`` variable), so the password is in
neither the pod spec nor the process arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from ..api.common import SecretKeyValue
from ..api.modelregistry import ModelRegistrySpec, MySQLConfig, PostgresConfig


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


def postgres_dsn(pg: PostgresConfig, secrets: DatabaseSecrets) -> str:
    user = quote(pg.username or "", safe="")
    credentials = user
    if secrets.password is not None and pg.password_secret is not None:
        credentials += ":" + quote(secrets.password, safe="")
    host = pg.address
    if ":" in host and not host.startswith("["):  # IPv6 literal
        host = f"[{host}]"
    params: dict[str, str] = {"sslmode": pg.ssl_mode}
    if secrets.ssl_password is not None and pg.ssl_password_secret is not None:
        params["sslpassword"] = secrets.ssl_password
    userinfo = f"{credentials}@" if credentials else ""
    database = quote(pg.database or "", safe="")
    return f"postgresql://{userinfo}{host}:{pg.port}/{database}?{urlencode(params, quote_via=quote)}"


def mysql_dsn(my: MySQLConfig, secrets: DatabaseSecrets) -> str:
    # go-sql-driver splits user from password at the first ':' and credentials from the
    # address at the last '@' before the last '/', so the password needs no escaping
    # (and escaping would be taken literally).
    credentials = my.username
    if secrets.password is not None and my.password_secret is not None:
        credentials += ":" + secrets.password
    return f"{credentials}@tcp({my.host}:{my.port})/{my.database}?charset=utf8mb4"


class _Wiring:
    """Collects flags, volumes and mounts while a wiring is built."""

    def __init__(self, db_type: str) -> None:
        self.args = [f"--embedmd-database-type={db_type}"]
        self.volumes: list[dict[str, Any]] = []
        self.mounts: list[dict[str, Any]] = []

    def file(self, flag: str, volume: str, path: str, ref: SecretKeyValue, *, config_map: bool = False) -> None:
        vol, mount = _mount(volume, path, ref, config_map=config_map)
        self.volumes.append(vol)
        self.mounts.append(mount)
        self.args.append(f"{flag}={path}/{ref.key}")

    def root_cert(self, prefix: str, config_map: SecretKeyValue | None, secret: SecretKeyValue | None) -> None:
        """The CA file: a ConfigMap wins over a Secret, as upstream."""
        ref = config_map or secret
        if ref is not None:
            self.file(
                "--embedmd-database-ssl-root-cert",
                f"{prefix}-ssl-rootcert",
                f"/etc/{prefix}_ssl_rootcert",
                ref,
                config_map=config_map is not None,
            )


def _postgres_wiring(name: str, pg: PostgresConfig, secrets: DatabaseSecrets) -> DatabaseWiring:
    w = _Wiring("postgres")
    if pg.ssl_certificate_secret:
        w.file("--embedmd-database-ssl-cert", "postgres-ssl-cert", "/etc/postgres_ssl_cert", pg.ssl_certificate_secret)
    if pg.ssl_key_secret:
        w.file("--embedmd-database-ssl-key", "postgres-ssl-key", "/etc/postgres_ssl_key", pg.ssl_key_secret)
    w.root_cert("postgres", pg.ssl_root_certificate_config_map, pg.ssl_root_certificate_secret)
    return DatabaseWiring(
        "postgres", postgres_dsn(pg, secrets), w.args, connection_secret_name(name), w.volumes, w.mounts
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
        w.args.append(f"--embedmd-database-ssl-cipher={my.ssl_cipher}")
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
