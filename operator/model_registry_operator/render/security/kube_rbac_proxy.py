"""kube-rbac-proxy mode (spec.kubeRBACProxy): a sidecar that admits callers allowed to get the Service."""

from __future__ import annotations

from ...names import KUBE_RBAC_PROXY, KUBE_RBAC_PROXY_AVAILABLE
from ..engine import render_template
from ..features import Feature, FeatureContext
from .proxy import DASHBOARD_PEER, ROUTER_PEER, render_proxy


def render(ctx: FeatureContext) -> Feature:
    proxy = ctx.spec.kube_rbac_proxy
    if proxy is None:
        return Feature()
    values = ctx.template_context(proxy=proxy)
    return render_proxy(
        ctx,
        proxy,
        mode=KUBE_RBAC_PROXY,
        condition=KUBE_RBAC_PROXY_AVAILABLE,
        extra_objects=render_template("modelregistry/kube-rbac-proxy/configmap.yaml.j2", values),
        peers=[ROUTER_PEER, DASHBOARD_PEER],
    )
