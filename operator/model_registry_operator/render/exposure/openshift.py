"""OpenShift exposure: the plain-HTTP Route, the users Group and its RoleBinding."""

from __future__ import annotations

from ...kinds import ROUTE_API
from ..engine import render_template
from ..features import Feature, FeatureContext


def render(ctx: FeatureContext) -> Feature:
    """Route `<name>-http` when rest.serviceRoute is enabled; Group and RoleBinding on OpenShift.

    The Group needs the user API (absent with an external identity provider: the group then
    comes from it, and only the RoleBinding is made).
    """
    feature = Feature()
    caps = ctx.capabilities
    values = ctx.template_context()
    if ctx.spec.rest.service_route == "enabled":
        if caps.openshift_routes:
            feature.objects.extend(render_template("modelregistry/openshift/http-route.yaml.j2", values))
        else:
            feature.missing_apis.append(ROUTE_API)
    if caps.openshift_users:
        feature.objects.extend(render_template("modelregistry/openshift/group.yaml.j2", values))
    if caps.openshift_routes or caps.openshift_users:
        feature.objects.extend(render_template("modelregistry/openshift/role-binding.yaml.j2", values))
    return feature
