"""Run-time defaults of the security modes (images, TLS secrets, domains, Istio settings)."""

from __future__ import annotations

from typing import Any

from ...api.common import SecretKeyValue
from ...api.modelregistry import (
    GatewayConfig,
    IstioConfig,
    ModelRegistrySpec,
    ServerConfig,
)
from ...names import KUBE_RBAC_PROXY, OAUTH_PROXY
from ...platform.capabilities import Capabilities
from ...settings import OperatorSettings

DEFAULT_AUDIENCES = ["https://kubernetes.default.svc"]


def default_domain(explicit: str | None, settings: OperatorSettings, capabilities: Capabilities) -> str | None:
    """The spec's domain, else DEFAULT_DOMAIN, else the cluster's ingress domain."""
    return explicit or settings.default_domain or capabilities.cluster_domain or None


def tls_secret_name(registry_name: str, mode: str) -> str:
    """The Secret the OpenShift service CA fills when the spec names none."""
    return f"{registry_name}-{mode}"


def security_defaults(
    spec: ModelRegistrySpec, settings: OperatorSettings, registry_name: str, capabilities: Capabilities
) -> dict[str, Any]:
    """Updates of the spec (field name -> value) for the security mode in use."""
    updates: dict[str, Any] = {}
    for attr, mode, image in (
        ("kube_rbac_proxy", KUBE_RBAC_PROXY, settings.kube_rbac_proxy_image),
        ("oauth_proxy", OAUTH_PROXY, settings.oauth_proxy_image),
    ):
        proxy = getattr(spec, attr)
        if proxy is None:
            continue
        secret = tls_secret_name(registry_name, mode)
        updates[attr] = proxy.model_copy(
            update={
                "image": proxy.image or image,
                "tls_certificate_secret": proxy.tls_certificate_secret or SecretKeyValue(name=secret, key="tls.crt"),
                "tls_key_secret": proxy.tls_key_secret or SecretKeyValue(name=secret, key="tls.key"),
                "domain": default_domain(proxy.domain, settings, capabilities),
            }
        )
    if spec.istio is not None:
        updates["istio"] = _istio_defaults(spec.istio, settings, capabilities)
    return updates


def _server(server: ServerConfig | None, settings: OperatorSettings) -> ServerConfig:
    server = server or ServerConfig()
    tls = server.tls
    if tls is not None and tls.mode != "ISTIO_MUTUAL" and not tls.credential_name:
        tls = tls.model_copy(update={"credential_name": settings.default_cert or None})
    return server.model_copy(
        update={
            "tls": tls,
            "port": server.port if server.port is not None else (443 if tls is not None else 80),
            "gateway_route": server.gateway_route or "enabled",
        }
    )


def _istio_defaults(istio: IstioConfig, settings: OperatorSettings, capabilities: Capabilities) -> IstioConfig:
    gateway = istio.gateway
    if gateway is not None:
        gateway = GatewayConfig.model_validate(
            {
                **gateway.model_dump(by_alias=True, exclude_none=True),
                "domain": default_domain(gateway.domain, settings, capabilities),
                "istioIngress": gateway.istio_ingress or settings.default_istio_ingress,
                "controlPlane": gateway.control_plane or settings.default_control_plane or None,
            }
        ).model_copy(
            update={
                "rest": _server(gateway.rest, settings),
                "grpc": _server(gateway.grpc, settings) if gateway.grpc is not None else None,
            }
        )
    return istio.model_copy(
        update={
            "auth_provider": istio.auth_provider or settings.default_auth_provider or None,
            "auth_config_labels": istio.auth_config_labels
            if istio.auth_config_labels is not None
            else settings.auth_config_labels,
            "audiences": istio.audiences or list(DEFAULT_AUDIENCES),
            "gateway": gateway,
        }
    )
