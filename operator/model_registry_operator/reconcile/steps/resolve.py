"""Step 1: the spec, parsed and checked, and what it references read from the cluster.

A missing Secret, ConfigMap or key is a :class:`ConfigurationError` naming it; every secret value
read (or generated) is collected, so that no failure message or log line can quote it.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from typing import Any

from ...api.common import SecretKeyValue
from ...api.modelregistry import ModelRegistrySpec
from ...api.validation import parse_spec
from ...database import probe as db_probe
from ...kinds import CONFIG_MAP, SECRET, lookup
from ...kube import Obj
from ...render.database import DatabaseSecrets, referenced_keys
from ...render.defaults import postgres_names
from ...render.features import IngressService
from ...render.modelregistry import RenderInputs, digest_of
from ...render.security.oauth_proxy import cookie_secret_name
from ...settings import OperatorSettings
from ..errors import ConfigurationError
from . import Env, ProbeTarget

SERVICE = lookup("v1", "Service")


def validated_spec(body: Obj, settings: OperatorSettings) -> ModelRegistrySpec:
    spec, problems = parse_spec(body.get("spec"), name=body["metadata"]["name"])
    if problems or spec is None:
        raise ConfigurationError("invalid spec: " + "; ".join(str(p) for p in problems))
    required_ns = settings.registries_namespace
    namespace = body["metadata"]["namespace"]
    if required_ns and namespace != required_ns:
        raise ConfigurationError(f"metadata.namespace: registries must be created in namespace {required_ns}")
    return spec


async def resolve(
    env: Env, namespace: str, name: str, spec: ModelRegistrySpec, read_secrets: set[str]
) -> tuple[RenderInputs, ProbeTarget | None]:
    """Read what the spec references; a missing Secret / key is a configuration error.

    Every secret value read (and generated) is added to ``read_secrets``.
    """
    kube = env.kube
    generated_password = ""
    pg = spec.postgres
    if pg is not None and pg.generate_deployment:
        names = postgres_names(name)
        existing = await kube.get(SECRET, namespace, names["secret_name"])
        generated_password = (decode(existing, "password") if existing else None) or secrets.token_urlsafe(16)
        read_secrets.add(generated_password)
    refs = referenced_keys(spec)
    objects = await asyncio.gather(
        *(
            kube.get(SECRET if kind == "secret" else CONFIG_MAP, namespace, ref if isinstance(ref, str) else ref.name)
            for kind, ref in refs
        )
    )
    values: dict[tuple[str, str], str] = {}
    digest_parts: dict[str, Any] = {}
    for (kind, ref), obj in zip(refs, objects, strict=True):
        obj_name = ref if isinstance(ref, str) else ref.name
        label = "Secret" if kind == "secret" else "ConfigMap"
        generated = pg is not None and pg.generate_deployment and obj_name == postgres_names(name)["secret_name"]
        if obj is None:
            if generated:
                values[(obj_name, "password")] = generated_password
                continue
            raise ConfigurationError(f"{label} {obj_name!r} not found in namespace {namespace}")
        # Only digests of the data go further: the values themselves never leave here.
        digest_parts[f"{kind}/{obj_name}"] = obj.get("data") or {}
        if isinstance(ref, SecretKeyValue):
            value = decode(obj, ref.key)
            if value is None:
                raise ConfigurationError(f"{label} {obj_name!r} has no key {ref.key!r}")
            if kind == "secret":
                read_secrets.add(value)
            values[(obj_name, ref.key)] = value
    db_secrets = DatabaseSecrets(
        password=_lookup(values, _db_field(spec, "password_secret")),
        ssl_password=_lookup(values, pg.ssl_password_secret if pg else None),
    )
    cookie = ""
    if spec.oauth_proxy is not None:  # generated once, then kept
        existing = await kube.get(SECRET, namespace, cookie_secret_name(name))
        cookie = (decode(existing, "cookie-secret.txt") if existing else None) or secrets.token_hex(16)
        read_secrets.add(cookie)
    ingress = await _istio_ingress(env, spec)
    inputs = RenderInputs(db_secrets, generated_password, digest_of(digest_parts), cookie, ingress)
    return inputs, probe_target(env.settings, spec, values, db_secrets)


async def _istio_ingress(env: Env, spec: ModelRegistrySpec) -> IngressService | None:
    """The unique ingress gateway Service the gateway Routes point at (OpenShift only)."""
    gateway = spec.istio.gateway if spec.istio is not None else None
    if gateway is None or not env.capabilities().openshift_routes:
        return None
    if not any(s is not None and s.gateway_route == "enabled" for s in (gateway.rest, gateway.grpc)):
        return None
    selector = f"istio={gateway.istio_ingress or env.settings.default_istio_ingress}"
    if gateway.control_plane:
        selector += f",istio.io/rev={gateway.control_plane}"
    services = await env.kube.list(SERVICE, None, selector)
    if len(services) != 1:
        return None
    meta = services[0]["metadata"]
    return IngressService(meta["namespace"], meta["name"])


def probe_target(
    settings: OperatorSettings, spec: ModelRegistrySpec, values: dict[tuple[str, str], str], db: DatabaseSecrets
) -> ProbeTarget | None:
    """Where and how the operator probes the registry's database (``None``: not probed)."""
    if settings.database_probe == "off":
        return None
    if spec.postgres is not None:
        pg = spec.postgres
        return db_probe.PostgresTarget(
            host=pg.address,
            port=pg.port,
            database=pg.database or pg.username or "postgres",
            username=pg.username or "",
            password=db.password,
            sslmode=pg.ssl_mode,
            sslrootcert=_lookup(values, pg.ssl_root_certificate_config_map or pg.ssl_root_certificate_secret),
            sslcert=_lookup(values, pg.ssl_certificate_secret),
            sslkey=_lookup(values, pg.ssl_key_secret),
        )
    if spec.mysql is not None:
        my = spec.mysql
        return db_probe.MySQLTarget(
            host=my.host,
            port=my.port,
            database=my.database,
            username=my.username,
            password=db.password,
            ssl_ca=_lookup(values, my.ssl_root_certificate_config_map or my.ssl_root_certificate_secret),
            ssl_cert=_lookup(values, my.ssl_certificate_secret),
            ssl_key=_lookup(values, my.ssl_key_secret),
            ssl_cipher=my.ssl_cipher,
            verify_server_cert=bool(my.verify_server_cert),
        )
    return None


def decode(obj: Obj, key: str) -> str | None:
    if obj.get("kind") == "Secret":
        raw = (obj.get("data") or {}).get(key)
        return base64.b64decode(raw).decode("utf-8", "replace") if raw is not None else None
    value = (obj.get("data") or {}).get(key)
    return str(value) if value is not None else None


def _lookup(values: dict[tuple[str, str], str], ref: SecretKeyValue | None) -> str | None:
    return values.get((ref.name, ref.key)) if ref is not None else None


def _db_field(spec: ModelRegistrySpec, attr: str) -> SecretKeyValue | None:
    config = spec.postgres or spec.mysql
    return getattr(config, attr, None) if config is not None else None
