"""Operator settings: one typed object read from the environment once, at start-up.

Variable names follow the upstream operator (``RELATED_IMAGE_*``, ``REGISTRIES_NAMESPACE``,
``DEFAULT_DOMAIN``, ...), so existing deployment manifests keep working. A bad value is a
start-up error that names the variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def parse_bind_address(raw: str) -> tuple[str | None, int] | None:
    """``[host]:port`` (upstream's ``--metrics-bind-address``): (host, None for every interface;
    port), or None for ``0`` (off)."""
    raw = raw.strip()
    if raw == "0":
        return None
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected [host]:port (e.g. :8443, 127.0.0.1:8080) or 0 to turn it off, got {raw!r}")
    host = host.removeprefix("[").removesuffix("]")
    return host or None, int(port)


def parse_labels(raw: str) -> dict[str, str]:
    """Parse ``k=v,k2=v2`` (the upstream DEFAULT_AUTH_CONFIG_LABELS format)."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value pairs separated by commas, got {item!r}")
        labels[key.strip()] = value.strip()
    return labels


LEADER_ELECTION_ID = "85f368d1.opendatahub.io"
"""The upstream operator's Lease name (its ``LeaderElectionID``): one Lease for both operators, so
that while one replaces the other they never both reconcile."""

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(ms|s|m|h)?\s*")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(raw: str) -> float:
    """Seconds from ``15``, ``15s``, ``1500ms``, ``1m`` (the Go durations of upstream's flags)."""
    match = _DURATION.fullmatch(raw)
    if match is None:
        raise ValueError(f"expected a duration such as 15s, 1500ms or 1m, got {raw!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]


class OperatorSettings(BaseSettings):
    """Everything the operator reads from its environment."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Images (upstream names).
    registry_image: str = Field(
        default="quay.io/opendatahub/model-registry:latest",
        validation_alias=AliasChoices("RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE", "REST_IMAGE"),
    )
    kube_rbac_proxy_image: str = Field(
        default="quay.io/openshift/origin-kube-rbac-proxy:latest",
        validation_alias="RELATED_IMAGE_ODH_KUBE_RBAC_PROXY_IMAGE",
    )
    oauth_proxy_image: str = Field(
        default="quay.io/openshift/origin-oauth-proxy:latest", validation_alias="OAUTH_PROXY_IMAGE"
    )
    postgres_image: str = Field(
        default="quay.io/sclorg/postgresql-16-c10s:latest", validation_alias="RELATED_IMAGE_POSTGRESQL_16_IMAGE"
    )
    upload_job_image: str = Field(
        default="quay.io/opendatahub/model-registry-upload:latest",
        validation_alias="RELATED_IMAGE_MODEL_UPLOAD_JOB_IMAGE",
    )

    # Where registries may live and how they are exposed (upstream names).
    registries_namespace: str = Field(default="", validation_alias="REGISTRIES_NAMESPACE")
    watch_namespace: str = Field(default="", validation_alias="WATCH_NAMESPACE")
    default_domain: str = Field(default="", validation_alias="DEFAULT_DOMAIN")
    gateway_domain: str = Field(default="", validation_alias="GATEWAY_DOMAIN")
    gateway_name: str = Field(default="data-science-gateway", validation_alias="GATEWAY_NAME")
    gateway_namespace: str = Field(default="openshift-ingress", validation_alias="GATEWAY_NAMESPACE")
    httproute_namespace: str = Field(default="redhat-ods-applications", validation_alias="HTTPROUTE_NAMESPACE")

    # Istio + Authorino defaults (upstream v0.2 names).
    default_auth_provider: str = Field(default="", validation_alias="DEFAULT_AUTH_PROVIDER")
    default_auth_config_labels: str = Field(default="", validation_alias="DEFAULT_AUTH_CONFIG_LABELS")
    default_istio_ingress: str = Field(default="ingressgateway", validation_alias="DEFAULT_ISTIO_INGRESS")
    default_cert: str = Field(default="", validation_alias="DEFAULT_CERT")
    default_control_plane: str = Field(default="", validation_alias="DEFAULT_CONTROL_PLANE")
    create_auth_resources: bool = Field(default=True, validation_alias="CREATE_AUTH_RESOURCES")
    enable_webhooks: bool = Field(default=False, validation_alias="ENABLE_WEBHOOKS")
    # The webhook server (docs/operations.md, "Admission webhooks"); the certificate is the
    # operator's own ("operator") or files mounted into WEBHOOK_CERT_DIR ("files": cert-manager).
    webhook_port: int = Field(default=9443, ge=1, le=65535, validation_alias="WEBHOOK_PORT")
    webhook_host: str = Field(default="0.0.0.0", validation_alias="WEBHOOK_BIND_ADDRESS")  # noqa: S104
    webhook_cert_dir: str = Field(default="/tmp/k8s-webhook-server/serving-certs", validation_alias="WEBHOOK_CERT_DIR")  # noqa: S108
    webhook_cert_source: Literal["operator", "files"] = Field(
        default="operator", validation_alias="WEBHOOK_CERT_SOURCE"
    )
    webhook_cert_secret: str = Field(
        default="model-registry-operator-webhook-server-cert", validation_alias="WEBHOOK_CERT_SECRET"
    )
    webhook_cert_validity_seconds: float = Field(
        default=365 * 86400.0, ge=10, validation_alias="WEBHOOK_CERT_VALIDITY_SECONDS"
    )
    webhook_cert_check_seconds: float = Field(default=60.0, gt=0, validation_alias="WEBHOOK_CERT_CHECK_SECONDS")
    webhook_cert_extra_names: str = Field(default="", validation_alias="WEBHOOK_CERT_EXTRA_NAMES")
    webhook_service: str = Field(
        default="model-registry-operator-webhook-service", validation_alias="WEBHOOK_SERVICE_NAME"
    )
    webhook_validating_configuration: str = Field(
        default="model-registry-operator-validating-webhook-configuration",
        validation_alias="WEBHOOK_VALIDATING_CONFIGURATION",
    )
    webhook_mutating_configuration: str = Field(
        default="model-registry-operator-mutating-webhook-configuration",
        validation_alias="WEBHOOK_MUTATING_CONFIGURATION",
    )
    operator_namespace: str = Field(default="", validation_alias="POD_NAMESPACE")

    # Our own knobs.
    resync_seconds: float = Field(default=300.0, gt=0, validation_alias="RESYNC_INTERVAL_SECONDS")
    capability_refresh_seconds: float = Field(default=30.0, gt=0, validation_alias="CAPABILITY_REFRESH_SECONDS")
    database_probe: Literal["auto", "on", "off"] = Field(default="auto", validation_alias="DATABASE_PROBE")
    # The longest a reconcile (or a registry's cleanup) may take; past it, it is cancelled,
    # reported as ReconcileError with the traceback of where it was stuck, and retried with backoff.
    reconcile_timeout: float = Field(default=120.0, gt=0, le=3600, validation_alias="RECONCILE_TIMEOUT_SECONDS")
    database_probe_timeout: float = Field(default=3.0, gt=0, le=30, validation_alias="DATABASE_PROBE_TIMEOUT")
    health_port: int = Field(default=8081, ge=1, le=65535, validation_alias="HEALTH_PROBE_PORT")
    health_host: str = Field(default="0.0.0.0", validation_alias="HEALTH_PROBE_HOST")  # noqa: S104
    api_workers: int = Field(default=16, ge=1, le=256, validation_alias="API_WORKERS")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_format: Literal["text", "json"] = Field(default="text", validation_alias="LOG_FORMAT")
    # The metrics endpoint (upstream's flags; docs/operations.md, "Metrics").
    metrics_bind_address: str = Field(default=":8443", validation_alias="METRICS_BIND_ADDRESS")
    metrics_secure: bool = Field(default=True, validation_alias="METRICS_SECURE")
    metrics_cert_dir: str = Field(default="", validation_alias="METRICS_CERT_DIR")
    metrics_cert_name: str = Field(default="tls.crt", min_length=1, validation_alias="METRICS_CERT_NAME")
    metrics_key_name: str = Field(default="tls.key", min_length=1, validation_alias="METRICS_KEY_NAME")

    # Leader election (controller-runtime's semantics and defaults; off by default, as upstream).
    leader_elect: bool = Field(default=False, validation_alias="LEADER_ELECT")
    leader_election_id: str = Field(default=LEADER_ELECTION_ID, min_length=1, validation_alias="LEADER_ELECTION_ID")
    # Empty: the Pod's namespace (the ServiceAccount's namespace file); required outside a cluster.
    leader_election_namespace: str = Field(default="", validation_alias="LEADER_ELECTION_NAMESPACE")
    lease_duration: float = Field(default=15.0, ge=1, le=3600, validation_alias="LEADER_ELECTION_LEASE_DURATION")
    renew_deadline: float = Field(default=10.0, gt=0, le=3600, validation_alias="LEADER_ELECTION_RENEW_DEADLINE")
    retry_period: float = Field(default=2.0, gt=0, le=3600, validation_alias="LEADER_ELECTION_RETRY_PERIOD")

    @field_validator("default_auth_config_labels")
    @classmethod
    def _labels_parse(cls, value: str) -> str:
        parse_labels(value)
        return value

    @field_validator("metrics_bind_address")
    @classmethod
    def _bind_address(cls, value: str) -> str:
        parse_bind_address(value)
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("lease_duration", "renew_deadline", "retry_period", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _lease_timing(self) -> Self:
        # client-go's own checks: the leader gives up (renew deadline) before its Lease can be
        # taken (lease duration), and retries at least once within the renew deadline.
        if self.renew_deadline >= self.lease_duration:
            raise ValueError(
                "LEADER_ELECTION_RENEW_DEADLINE must be shorter than LEADER_ELECTION_LEASE_DURATION "
                f"(got {self.renew_deadline:g}s and {self.lease_duration:g}s)"
            )
        if self.renew_deadline <= 1.2 * self.retry_period:
            raise ValueError(
                "LEADER_ELECTION_RENEW_DEADLINE must be longer than 1.2 x LEADER_ELECTION_RETRY_PERIOD "
                f"(got {self.renew_deadline:g}s and {self.retry_period:g}s)"
            )
        return self

    @property
    def auth_config_labels(self) -> dict[str, str]:
        return parse_labels(self.default_auth_config_labels)


def load_settings(overrides: Mapping[str, object] | None = None) -> OperatorSettings:
    """Read the settings, ``overrides`` (by variable name: command-line flags) over the
    environment; raises a ValueError naming the variable on bad input."""
    from pydantic import ValidationError

    try:
        return OperatorSettings(**dict[str, Any](overrides or {}))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"]:  # a check across fields: its message names the variables
                problems.append(err["msg"].removeprefix("Value error, "))
                continue
            field = str(err["loc"][0])
            problems.append(f"{_env_name(field)}: {err['msg']}")
        raise ValueError("invalid operator settings: " + "; ".join(problems)) from None


def _env_name(field: str) -> str:
    info = OperatorSettings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field.upper()
