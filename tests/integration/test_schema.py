"""Rendered objects validated by the real API server: server-side dry-run apply, strict field validation."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from model_registry_operator.api.validation import parse_spec
from model_registry_operator.kube import ApiError
from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES
from model_registry_operator.render.database import DatabaseSecrets
from model_registry_operator.render.defaults import apply_runtime_defaults
from model_registry_operator.render.modelregistry import RegistryRef, RenderInputs, render_model_registry
from model_registry_operator.settings import OperatorSettings
from tests.unit.cases import ANNOTATIONS, DATABASES, RESTS, spec_for
from tests.unit.test_dsn import CASES as DSN_CASES
from tests.unit.test_validation import HOSTILE_SPECS, LEGITIMATE_SPECS, NAMES, PG

from .kube import Cluster

pytestmark = pytest.mark.integration


def test_every_rendered_object_is_accepted_by_the_api_server(cluster: Cluster, namespace: str) -> None:
    settings = OperatorSettings()
    objects = []
    for database, rest, annotated in itertools.product(DATABASES, RESTS, ANNOTATIONS):
        spec, problems = parse_spec(spec_for(database, rest))
        assert spec is not None, problems
        name = f"r-{database}-{rest}-{annotated}"[:50]
        effective = apply_runtime_defaults(spec, settings, name)
        ref = RegistryRef(name, namespace, "00000000-0000-0000-0000-000000000000", ANNOTATIONS[annotated])
        objects += render_model_registry(
            ref, effective, settings, PLAIN_KUBERNETES, RenderInputs(DatabaseSecrets("pw", "kpw"), "gen", "digest")
        )

    failures = cluster.rejected_by_dry_run(objects)
    assert not failures, "\n".join(failures)
    assert len(objects) > 100


# ---- The CRD's value rules, by the real API server ---------------------------------------

MR_PATH = "/apis/modelregistry.opendatahub.io/v1beta1/namespaces/{namespace}/modelregistries"


def _dry_run_create(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]) -> ApiError | None:
    """A server-side dry-run create (strict field validation): None when admitted, else the error."""
    body = {
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": name},
        "spec": spec,
    }
    try:
        cluster.kube.request_sync(
            "POST",
            MR_PATH.format(namespace=namespace),
            query=[("dryRun", "All"), ("fieldValidation", "Strict")],
            body=body,
        )
    except ApiError as exc:
        return exc
    return None


def _causes(error: ApiError) -> str:
    details = error.body.get("details") or {}
    causes = details.get("causes") or []
    return "\n".join(f"{c.get('field', '')}: {c.get('message', '')}" for c in causes) or error.message


@pytest.mark.parametrize(("spec", "field", "text"), HOSTILE_SPECS, ids=[h[1] for h in HOSTILE_SPECS])
def test_the_api_server_refuses_what_the_reconcile_refuses(
    cluster: Cluster, namespace: str, spec: dict[str, Any], field: str, text: str
) -> None:
    """Every value the reconcile's re-check refuses (tests/unit/test_validation.py), the CRD
    refuses too, naming the same field."""
    error = _dry_run_create(cluster, namespace, "hostile", spec)
    assert error is not None, f"admitted: {spec}"
    assert error.status == 422, error
    causes = _causes(error)
    assert re.search(rf"(^|\n){re.escape(field)}(\[|\.|:)", causes + ":"), causes


@pytest.mark.parametrize("spec", LEGITIMATE_SPECS)
def test_the_api_server_admits_legitimate_values(cluster: Cluster, namespace: str, spec: dict[str, Any]) -> None:
    error = _dry_run_create(cluster, namespace, "legit", spec)
    assert error is None, _causes(error)


@pytest.mark.parametrize(("name", "spec", "ok"), NAMES, ids=[f"{len(n)}-{n[:12]}-{ok}" for n, _s, ok in NAMES])
def test_the_api_server_keeps_every_derived_name_valid(
    cluster: Cluster, namespace: str, name: str, spec: dict[str, Any], ok: bool
) -> None:
    error = _dry_run_create(cluster, namespace, name, spec)
    if ok:
        assert error is None, _causes(error)
        return
    assert error is not None
    causes = _causes(error)
    if "." in name or name[0].isdigit() or name != name.lower() or len(name) > 63:
        assert "metadata.name" in causes, causes  # the API server's own name checks may answer first
    else:
        assert "at most 54 with postgres.generateDeployment" in causes, causes


def test_issue_example_sixty_character_name_with_generate_deployment_is_refused(
    cluster: Cluster, namespace: str
) -> None:
    """Issue 12: a 60-character name with generateDeployment gave a 69-character Service and
    label; the API server now refuses it, with the limit in the message."""
    error = _dry_run_create(cluster, namespace, "r" * 60, {"rest": {}, "postgres": {"generateDeployment": True}})
    assert error is not None
    assert "at most 54 with postgres.generateDeployment" in _causes(error)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"rest": {"image": "quay.io/x:🚀"}, "postgres": PG}, "spec.rest.image"),
        ({"rest": {}, "postgres": {"generateDeployment": True, "image": "quay.io/x:🚀"}}, "spec.postgres.image"),
        ({"rest": {}, "postgres": PG, "kubeRBACProxy": {"image": "quay.io/x:🚀"}}, "spec.kubeRBACProxy.image"),
        ({"rest": {}, "postgres": PG, "oauthProxy": {"image": "quay.io/x:🚀"}}, "spec.oauthProxy.image"),
    ],
)
def test_issue_example_emoji_image_is_refused(
    cluster: Cluster, namespace: str, spec: dict[str, Any], field: str
) -> None:
    """Issue 12: `rest.image: "quay.io/x:🚀"` (and the postgres and proxy images) crashed the render."""
    error = _dry_run_create(cluster, namespace, "emoji", spec)
    assert error is not None
    assert field in _causes(error)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"rest": {}, "postgres": PG, "oauthProxy": {"port": 0}}, "spec.oauthProxy.port"),
        ({"rest": {}, "postgres": PG, "kubeRBACProxy": {"routePort": 0}}, "spec.kubeRBACProxy.routePort"),
        ({"rest": {}, "postgres": PG, "istio": {"gateway": {"grpc": {"port": 0}}}}, "spec.istio.gateway.grpc.port"),
        ({"rest": {"port": 8443}, "postgres": PG, "kubeRBACProxy": {}}, "spec.kubeRBACProxy.port"),
        ({"rest": {}, "postgres": PG, "oauthProxy": {"port": 8080}}, "spec.oauthProxy.port"),
    ],
    ids=["proxy-port-0", "route-port-0", "gateway-port-0", "rest-port-is-default-proxy-port", "proxy-port-is-rest"],
)
def test_issue_example_ports(cluster: Cluster, namespace: str, spec: dict[str, Any], field: str) -> None:
    """Issue 12: port 0 was allowed for the proxies, routePort and the gateway; rest.port equal
    to the proxy's port was accepted. The deprecated grpc.port keeps upstream's range (0 too)."""
    error = _dry_run_create(cluster, namespace, "ports", spec)
    assert error is not None
    assert field in _causes(error)
    assert _dry_run_create(cluster, namespace, "grpc", {"rest": {}, "grpc": {"port": 0}, "postgres": PG}) is None


def test_objects_rendered_from_hostile_but_valid_values_are_accepted(cluster: Cluster, namespace: str) -> None:
    """The hostile values the schema takes (DSN syntax, quotes, unicode, `$(...)` in database
    and user names, passwords) render objects that the API server accepts as they are."""
    settings = OperatorSettings()
    objects = []
    for index, (driver, _case, raw, secrets) in enumerate(DSN_CASES):
        spec, problems = parse_spec(
            {"rest": {}, driver: raw, "kubeRBACProxy": {}} if index % 2 else {"rest": {}, driver: raw}
        )
        assert spec is not None, problems
        name = f"h-{index}"
        ref = RegistryRef(name, namespace, "00000000-0000-0000-0000-000000000000")
        effective = apply_runtime_defaults(spec, settings, name)
        objects += render_model_registry(ref, effective, settings, PLAIN_KUBERNETES, RenderInputs(secrets))
    failures = cluster.rejected_by_dry_run(objects)
    assert not failures, "\n".join(failures)
