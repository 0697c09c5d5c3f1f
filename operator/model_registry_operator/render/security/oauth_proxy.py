"""OpenShift OAuth proxy mode (spec.oauthProxy): a sidecar delegating authorization to `get services/<name>`."""

from __future__ import annotations

import json

from ...names import OAUTH_PROXY, OAUTH_PROXY_AVAILABLE
from ..engine import render_template
from ..features import Feature, FeatureContext
from .proxy import ROUTER_PEER, render_proxy


def cookie_secret_name(name: str) -> str:
    return f"{name}-oauth-cookie-secret"


def delegate_urls(name: str, namespace: str) -> str:
    rule = {"group": "", "resource": "services", "verb": "get", "name": name, "namespace": namespace}
    return json.dumps({"/": rule}, separators=(",", ":"))


def render(ctx: FeatureContext, cookie_secret: str) -> Feature:
    proxy = ctx.spec.oauth_proxy
    if proxy is None:
        return Feature()
    values = ctx.template_context(proxy=proxy, cookie_secret=cookie_secret)
    return render_proxy(
        ctx,
        proxy,
        mode=OAUTH_PROXY,
        condition=OAUTH_PROXY_AVAILABLE,
        extra_objects=render_template("modelregistry/oauth-proxy/cookie-secret.yaml.j2", values),
        peers=[ROUTER_PEER],
        delegate_urls=delegate_urls(ctx.registry.name, ctx.registry.namespace),
    )
