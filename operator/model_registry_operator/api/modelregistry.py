"""The ModelRegistry custom resource: spec and status models.

Field names, defaults, enums and ranges match the upstream CRD so that upstream samples
apply unchanged. `v1beta1` (storage) and `v1alpha1` (served, deprecated) share this one
schema, so the API server converts between them without a webhook.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from ..names import MODEL_REGISTRY_DEPRECATED_VERSION, MODEL_REGISTRY_KIND, MODEL_REGISTRY_VERSION
from .common import (
    LABEL_KEY_PATTERN,
    RULES,
    ApiModel,
    Audience,
    Condition,
    HostName,
    MySQLDatabase,
    MySQLUser,
    OptionalCipherList,
    OptionalHostName,
    OptionalImage,
    OptionalLabelValue,
    OptionalObjectName,
    OptionalPlainName,
    OptionalPostgresDatabase,
    OptionalPostgresIdentifier,
    ResourceRequirements,
    SecretKeyValue,
    cel,
    with_rules,
)

DEPRECATION_WARNING = (
    f"Version {MODEL_REGISTRY_DEPRECATED_VERSION} of the {MODEL_REGISTRY_KIND} API is deprecated and will be "
    f"removed in a future release. Please use {MODEL_REGISTRY_VERSION} instead."
)

DOMAIN_PATTERN = (
    r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])"
    r"(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9]))*)?$"
)

RULES[DOMAIN_PATTERN] = "must be a DNS domain (RFC 1123 labels separated by dots)"

Toggle = Literal["disabled", "enabled"]
PostgresSSLMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
Port = int


class RestSpec(ApiModel):
    """The REST API server of the registry."""

    port: int = Field(default=8080, ge=1, le=65535, description="Listen port of the REST API server.")
    service_route: Toggle = Field(
        default="disabled",
        alias="serviceRoute",
        description="Create an OpenShift Route `<name>-http` for the plain REST port (OpenShift only).",
    )
    resources: ResourceRequirements | None = Field(
        default=None,
        description=(
            "Resources of the REST container. Default: requests cpu 100m and memory 256Mi, limits memory 256Mi."
        ),
    )
    image: OptionalImage | None = Field(
        default=None,
        description=("Registry server image. Default: the operator's RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE."),
    )


class GrpcSpec(ApiModel):
    """Deprecated: the gRPC (ML Metadata) server no longer exists. Accepted and ignored."""

    port: int = Field(default=9090, ge=0, le=65535, description="Deprecated, ignored.")
    resources: ResourceRequirements | None = Field(default=None, description="Deprecated, ignored.")
    image: str | None = Field(default=None, description="Deprecated, ignored.")


# The PostgreSQL image of generateDeployment (sclorg) creates the user and database only for
# names matching these (its own checks); anything else would crash the database pod.
GENERATED_USER_PATTERN = "^[a-zA-Z_][a-zA-Z0-9_]*$"
_GENERATED_RULE = "must be letters, digits and '_', not starting with a digit"
GENERATED_USER_MESSAGE = f"with generateDeployment, username {_GENERATED_RULE}"
GENERATED_DATABASE_PATTERN = GENERATED_USER_PATTERN
GENERATED_DATABASE_MESSAGE = f"with generateDeployment, database {_GENERATED_RULE}"

POSTGRES_RULES = [
    cel(
        "has(self.generateDeployment) && self.generateDeployment ? true : "
        "((has(self.host) && size(self.host) > 0) || (has(self.hostAddress) && size(self.hostAddress) > 0))",
        "GenerateDeployment must be set to true if host/hostAddress are not provided",
    ),
    cel(
        "has(self.database) && size(self.database) > 0 ? has(self.username) && size(self.username) > 0 : true",
        "Username must be set if database is specified",
    ),
    cel(
        "!(has(self.generateDeployment) && self.generateDeployment) || "
        "((!has(self.host) || size(self.host) == 0) && (!has(self.hostAddress) || size(self.hostAddress) == 0))",
        "host and hostAddress must not be set when generateDeployment is true",
    ),
    cel(
        "has(self.sslCertificateSecret) == has(self.sslKeySecret)",
        "sslCertificateSecret and sslKeySecret MUST be set together",
    ),
    cel(
        "!(has(self.generateDeployment) && self.generateDeployment) || !has(self.username) || "
        f"self.username == '' || self.username.matches('{GENERATED_USER_PATTERN}')",
        GENERATED_USER_MESSAGE,
        ".username",
    ),
    cel(
        "!(has(self.generateDeployment) && self.generateDeployment) || !has(self.database) || "
        f"self.database == '' || self.database.matches('{GENERATED_DATABASE_PATTERN}')",
        GENERATED_DATABASE_MESSAGE,
        ".database",
    ),
]


class PostgresConfig(ApiModel):
    """Connection to a PostgreSQL database, or an auto-provisioned one (generateDeployment)."""

    model_config = with_rules(POSTGRES_RULES)

    host: OptionalHostName | None = Field(default=None, description="Host name of the PostgreSQL server.")
    host_address: OptionalHostName | None = Field(
        default=None,
        alias="hostAddress",
        description="IP address of the PostgreSQL server; if provided, host is ignored.",
    )
    port: int = Field(default=5432, ge=1, le=65535, description="Port of the PostgreSQL server.")
    username: OptionalPostgresIdentifier | None = Field(
        default=None, description="User name to connect as (at most 63 bytes)."
    )
    password_secret: SecretKeyValue | None = Field(
        default=None, alias="passwordSecret", description="Secret key holding the password."
    )
    database: OptionalPostgresDatabase | None = Field(default=None, description="Database name (at most 63 bytes).")
    skip_db_creation: bool = Field(
        default=False,
        alias="skipDBCreation",
        description="Deprecated: the registry server creates its schema itself. Accepted and ignored.",
    )
    generate_deployment: bool | None = Field(
        default=None,
        alias="generateDeployment",
        description=(
            "Deploy a PostgreSQL server for this registry (Secret, PVC, Deployment, Service, "
            "NetworkPolicy). Honours database and username when given."
        ),
    )
    ssl_mode: PostgresSSLMode = Field(
        default="disable",
        alias="sslMode",
        description="libpq sslmode used to connect.",
    )
    ssl_certificate_secret: SecretKeyValue | None = Field(
        default=None, alias="sslCertificateSecret", description="Secret key holding the client certificate."
    )
    ssl_key_secret: SecretKeyValue | None = Field(
        default=None, alias="sslKeySecret", description="Secret key holding the client private key."
    )
    ssl_password_secret: SecretKeyValue | None = Field(
        default=None,
        alias="sslPasswordSecret",
        description="Secret key holding the password of an encrypted client key.",
    )
    ssl_root_certificate_config_map: SecretKeyValue | None = Field(
        default=None,
        alias="sslRootCertificateConfigMap",
        description="ConfigMap key holding the CA certificate(s); wins over sslRootCertificateSecret.",
    )
    ssl_root_certificate_secret: SecretKeyValue | None = Field(
        default=None, alias="sslRootCertificateSecret", description="Secret key holding the CA certificate(s)."
    )
    image: OptionalImage | None = Field(
        default=None,
        description=(
            "PostgreSQL image for generateDeployment. Default: the operator's RELATED_IMAGE_POSTGRESQL_16_IMAGE."
        ),
    )

    @property
    def address(self) -> str:
        """The server address: hostAddress wins over host, as documented."""
        return self.host_address or self.host or ""


MYSQL_RULES = [
    cel(
        "has(self.sslCertificateSecret) == has(self.sslKeySecret)",
        "sslCertificateSecret and sslKeySecret MUST be set together",
    ),
]


class MySQLConfig(ApiModel):
    """Connection to a MySQL or MariaDB database."""

    model_config = with_rules(MYSQL_RULES)

    host: HostName = Field(description="Host name (or IP address) of the MySQL server.")
    port: int = Field(default=3306, ge=1, le=65535, description="Port of the MySQL server.")
    username: MySQLUser = Field(description="User name to connect as (at most 32 characters, no ':').")
    password_secret: SecretKeyValue | None = Field(
        default=None, alias="passwordSecret", description="Secret key holding the password."
    )
    database: MySQLDatabase = Field(description="Database name (at most 64 characters).")
    skip_db_creation: bool = Field(
        default=False,
        alias="skipDBCreation",
        description="Deprecated: the registry server creates its schema itself. Accepted and ignored.",
    )
    ssl_certificate_secret: SecretKeyValue | None = Field(
        default=None, alias="sslCertificateSecret", description="Secret key holding the client certificate."
    )
    ssl_key_secret: SecretKeyValue | None = Field(
        default=None, alias="sslKeySecret", description="Secret key holding the client private key."
    )
    ssl_root_certificate_config_map: SecretKeyValue | None = Field(
        default=None,
        alias="sslRootCertificateConfigMap",
        description="ConfigMap key holding the CA certificate; wins over sslRootCertificateSecret.",
    )
    ssl_root_certificate_secret: SecretKeyValue | None = Field(
        default=None, alias="sslRootCertificateSecret", description="Secret key holding the CA certificate."
    )
    ssl_root_certificates_config_map_name: OptionalObjectName | None = Field(
        default=None,
        alias="sslRootCertificatesConfigMapName",
        description="A whole ConfigMap of CA certificates, mounted as a CA directory.",
    )
    ssl_root_certificates_secret_name: OptionalObjectName | None = Field(
        default=None,
        alias="sslRootCertificatesSecretName",
        description="A whole Secret of CA certificates, mounted as a CA directory.",
    )
    ssl_cipher: OptionalCipherList | None = Field(
        default=None, alias="sslCipher", description="Allowed TLS cipher(s), e.g. ECDHE-RSA-AES256-GCM-SHA384."
    )
    verify_server_cert: bool | None = Field(
        default=None, alias="verifyServerCert", description="Verify the server's certificate and host name."
    )


PROXY_TLS_RULES = [
    cel(
        "has(self.tlsCertificateSecret) == has(self.tlsKeySecret)",
        "tlsCertificateSecret and tlsKeySecret MUST be set together",
    ),
]


class _ProxyConfig(ApiModel):
    model_config = with_rules(PROXY_TLS_RULES)

    port: int = Field(default=8443, ge=1, le=65535, description="HTTPS port of the proxy (not rest.port).")
    tls_certificate_secret: SecretKeyValue | None = Field(
        default=None,
        alias="tlsCertificateSecret",
        description="Secret key holding the serving certificate. Default: service-ca generated secret.",
    )
    tls_key_secret: SecretKeyValue | None = Field(
        default=None, alias="tlsKeySecret", description="Secret key holding the serving private key."
    )
    service_route: Toggle = Field(
        default="enabled",
        alias="serviceRoute",
        description="Create a re-encrypt OpenShift Route `<name>-https` to the proxy.",
    )
    domain: str | None = Field(
        default=None,
        max_length=253,
        pattern=DOMAIN_PATTERN,
        description="Domain of the Route host. Default: DEFAULT_DOMAIN or the cluster's ingress domain.",
    )
    route_port: int = Field(default=443, ge=1, le=65535, alias="routePort", description="Port of the Route.")
    image: OptionalImage | None = Field(default=None, description="Proxy image. Default: from the operator settings.")


class OAuthProxyConfig(_ProxyConfig):
    """OpenShift OAuth proxy sidecar in front of the REST API (delegates to `get services/<name>`)."""


class KubeRBACProxyConfig(_ProxyConfig):
    """kube-rbac-proxy sidecar in front of the REST API (admits callers allowed to `get services/<name>`)."""


class TLSServerConfig(ApiModel):
    """TLS of an Istio gateway server."""

    mode: Literal["SIMPLE", "MUTUAL", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"] = Field(
        default="SIMPLE", description="Istio gateway TLS mode."
    )
    credential_name: OptionalObjectName | None = Field(
        default=None,
        alias="credentialName",
        description="Secret with the gateway's certificate. Default: DEFAULT_CERT.",
    )


class ServerConfig(ApiModel):
    """One server (REST or gRPC) of the Istio gateway."""

    port: int | None = Field(default=None, ge=1, le=65535, description="Gateway port (80, or 443 with TLS).")
    tls: TLSServerConfig | None = Field(default=None, description="TLS of this server.")
    gateway_route: Toggle | None = Field(
        default=None, alias="gatewayRoute", description="Create an OpenShift Route to the gateway (default enabled)."
    )


class GatewayConfig(ApiModel):
    """Istio ingress gateway of the registry."""

    domain: str | None = Field(
        default=None, max_length=253, pattern=DOMAIN_PATTERN, description="Domain of the gateway hosts."
    )
    istio_ingress: OptionalLabelValue | None = Field(
        default=None, alias="istioIngress", description="Ingress gateway selector value (default ingressgateway)."
    )
    control_plane: OptionalLabelValue | None = Field(
        default=None, alias="controlPlane", description="Istio control-plane revision of the ingress gateway."
    )
    rest: ServerConfig | None = Field(default=None, description="REST server of the gateway.")
    grpc: ServerConfig | None = Field(default=None, description="gRPC server of the gateway.")


_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
_LABEL_KEY_LENGTHS = r"^([^/]{1,253}/)?[^/]{1,63}$"
_LABEL_KEY_RE = re.compile(_LABEL_KEY_LENGTHS)
AUTH_CONFIG_LABEL_KEYS: dict[str, Any] = cel(
    f"self.all(k, k.matches({_LABEL_KEY_LENGTHS!r}) && k.matches({LABEL_KEY_PATTERN!r}))",
    "keys must be label keys ([DNS-subdomain prefix/]name, the name at most 63 characters)",
)


class IstioConfig(ApiModel):
    """Istio + Authorino security: mesh routing, an external authorizer and an optional ingress gateway."""

    auth_provider: OptionalPlainName | None = Field(
        default=None, alias="authProvider", description="Authorino provider name. Default: DEFAULT_AUTH_PROVIDER."
    )
    auth_config_labels: dict[str, OptionalLabelValue] | None = Field(
        default=None,
        alias="authConfigLabels",
        description="Labels of the AuthConfig (label keys and values). Default: DEFAULT_AUTH_CONFIG_LABELS.",
        json_schema_extra={"maxProperties": 64, "x-kubernetes-validations": [AUTH_CONFIG_LABEL_KEYS]},
    )

    @field_validator("auth_config_labels")
    @classmethod
    def _label_keys(cls, labels: dict[str, str] | None) -> dict[str, str] | None:
        for key in labels or {}:
            if not (_LABEL_KEY.fullmatch(key) and _LABEL_KEY_RE.fullmatch(key)):
                raise ValueError(f"key {key!r}: {AUTH_CONFIG_LABEL_KEYS['message']}")
        return labels

    tls_mode: Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"] = Field(
        default="ISTIO_MUTUAL", alias="tlsMode", description="DestinationRule TLS mode."
    )
    audiences: list[Audience] | None = Field(
        default=None,
        max_length=64,
        description="Token audiences accepted by the AuthConfig. Default: https://kubernetes.default.svc.",
    )
    gateway: GatewayConfig | None = Field(default=None, description="Istio ingress gateway.")


SPEC_RULES = [
    cel(
        "(has(self.postgres) ? 1 : 0) + (has(self.mysql) ? 1 : 0) == 1",
        "exactly one of postgres or mysql must be set",
    ),
    cel(
        "(has(self.oauthProxy) ? 1 : 0) + (has(self.kubeRBACProxy) ? 1 : 0) + (has(self.istio) ? 1 : 0) <= 1",
        "at most one of oauthProxy, kubeRBACProxy and istio may be set",
    ),
    *(
        cel(
            f"!has(self.{proxy}) || (has(self.{proxy}.port) ? self.{proxy}.port : 8443) != "
            "(has(self.rest.port) ? self.rest.port : 8080)",
            f"{proxy}.port must differ from rest.port (the REST server listens on it behind the proxy)",
            f".{proxy}.port",
        )
        for proxy in ("oauthProxy", "kubeRBACProxy")
    ),
]


def name_limit_rule() -> dict[str, str]:
    """The CEL rule on the object's root: every name derived from metadata.name stays valid.

    The name itself is a Service name (DNS-1035 label: no dots, no leading digit, at most 63)
    and a label value; generateDeployment adds the Service and label `<name>-postgres`
    (so at most 63 - 9 = 54); a proxy or an Istio gateway adds the host label `<name>-rest`
    (so at most 63 - 5 = 58).
    """
    generated = (
        "has(self.spec.postgres) && has(self.spec.postgres.generateDeployment) && self.spec.postgres.generateDeployment"
    )
    host = (
        "has(self.spec.oauthProxy) || has(self.spec.kubeRBACProxy) || "
        "(has(self.spec.istio) && has(self.spec.istio.gateway))"
    )
    return cel(
        f"self.metadata.name.matches('{SERVICE_NAME_PATTERN}') && size(self.metadata.name) <= "
        f"(({generated}) ? {MAX_NAME_GENERATED} : ({host}) ? {MAX_NAME_HOST} : {MAX_NAME})",
        NAME_MESSAGE,
    )


SERVICE_NAME_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_NAME = 63
MAX_NAME_GENERATED = MAX_NAME - len("-postgres")
MAX_NAME_HOST = MAX_NAME - len("-rest")
NAME_MESSAGE = (
    "metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, no dots) "
    f"of at most {MAX_NAME} characters; at most {MAX_NAME_GENERATED} with postgres.generateDeployment "
    f"(for the Service '<name>-postgres'), at most {MAX_NAME_HOST} with oauthProxy, kubeRBACProxy or "
    "istio.gateway (for the host '<name>-rest.<domain>')"
)


def name_problem(name: str, spec: ModelRegistrySpec) -> str | None:
    """What is wrong with a registry name for this spec (the root CEL rule, in Python), or None."""
    if spec.postgres is not None and spec.postgres.generate_deployment:
        limit = MAX_NAME_GENERATED
    elif spec.oauth_proxy or spec.kube_rbac_proxy or (spec.istio is not None and spec.istio.gateway is not None):
        limit = MAX_NAME_HOST
    else:
        limit = MAX_NAME
    if re.fullmatch(SERVICE_NAME_PATTERN, name) and len(name) <= limit:
        return None
    return NAME_MESSAGE


class ModelRegistrySpec(ApiModel):
    """Desired state of a model registry. One of `postgres` or `mysql` MUST be provided."""

    model_config = with_rules(SPEC_RULES)

    rest: RestSpec = Field(description="REST API server configuration.")
    grpc: GrpcSpec | None = Field(default=None, description="Deprecated: accepted and ignored.")
    postgres: PostgresConfig | None = Field(default=None, description="PostgreSQL database configuration.")
    mysql: MySQLConfig | None = Field(default=None, description="MySQL / MariaDB database configuration.")
    enable_database_upgrade: bool | None = Field(
        default=None,
        alias="enable_database_upgrade",
        description=("Deprecated: the registry server always migrates its schema at start-up. Accepted and ignored."),
    )
    downgrade_db_schema_version: int | None = Field(
        default=None,
        alias="downgrade_db_schema_version",
        description="Deprecated: schema downgrades are not supported by the registry server. Accepted and ignored.",
    )
    oauth_proxy: OAuthProxyConfig | None = Field(
        default=None, alias="oauthProxy", description="OpenShift OAuth proxy configuration."
    )
    kube_rbac_proxy: KubeRBACProxyConfig | None = Field(
        default=None, alias="kubeRBACProxy", description="kube-rbac-proxy configuration."
    )
    istio: IstioConfig | None = Field(default=None, description="Istio + Authorino configuration.")


class ModelRegistryStatus(ApiModel):
    """Observed state of a model registry."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, extra="ignore")

    observed_generation: int | None = Field(
        default=None, alias="observedGeneration", description="The .metadata.generation last reconciled."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Available, Progressing, Degraded, DatabaseAvailable and per-mode conditions.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    hosts: list[str] | None = Field(default=None, description="Host names where the registry can be reached.")
    hosts_str: str | None = Field(default=None, alias="hostsStr", description="Comma-separated hosts.")
    spec_defaults: str | None = Field(
        default=None,
        alias="specDefaults",
        description="JSON merge patch of the defaults the operator applied at run time on top of the spec.",
    )
