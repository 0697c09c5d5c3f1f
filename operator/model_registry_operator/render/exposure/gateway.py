"""Gateway API exposure: an HTTPRoute under GATEWAY_DOMAIN plus the ReferenceGrant it needs.

Enabled by the operator settings (GATEWAY_DOMAIN non-empty), as upstream.
"""

from __future__ import annotations

from ...kinds import GATEWAY_API
from ...names import EXTERNAL_ADDRESS_ANNOTATION
from ..engine import render_template
from ..features import Feature, FeatureContext


def render(ctx: FeatureContext) -> Feature:
    settings, name = ctx.settings, ctx.registry.name
    if not settings.gateway_domain:
        return Feature()
    if not ctx.capabilities.gateway_api:
        return Feature(missing_apis=[GATEWAY_API])
    proxy = ctx.spec.kube_rbac_proxy or ctx.spec.oauth_proxy
    backend_port = proxy.port if proxy is not None else ctx.spec.rest.port
    values = ctx.template_context(backend_port=backend_port)
    host = f"{settings.gateway_domain}/model-registry/{name}"
    return Feature(
        objects=[
            *render_template("modelregistry/gateway/httproute.yaml.j2", values),
            *render_template("modelregistry/gateway/reference-grant.yaml.j2", values),
        ],
        hosts=[host],
        service_annotations={EXTERNAL_ADDRESS_ANNOTATION: host},
    )
