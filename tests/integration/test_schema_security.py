"""Objects of every security mode validated by the real API server (server-side dry-run, strict)."""

from __future__ import annotations

import pytest

from model_registry_operator.api.validation import parse_spec
from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES
from model_registry_operator.render.database import DatabaseSecrets
from model_registry_operator.render.defaults import apply_runtime_defaults
from model_registry_operator.render.modelregistry import RegistryRef, RenderInputs, render_model_registry
from model_registry_operator.settings import OperatorSettings
from tests.unit.test_render_security import DATABASES, MODES

from .kube import Cluster

pytestmark = pytest.mark.integration


def test_security_mode_objects_are_accepted_by_the_api_server(cluster: Cluster, namespace: str) -> None:
    """Core kinds only (the optional APIs are stand-ins here): Deployments with sidecars and
    volumes, Services, ConfigMaps, Secrets, ClusterRoleBindings, NetworkPolicies."""
    settings = OperatorSettings(DEFAULT_AUTH_PROVIDER="authorino")
    objects = []
    for database in DATABASES:
        for mode, extra in MODES.items():
            spec, problems = parse_spec({"rest": {}, **DATABASES[database], **extra})
            assert spec is not None, problems
            name = f"s-{database}-{mode}"[:50]
            ref = RegistryRef(name, namespace, "00000000-0000-0000-0000-000000000000")
            effective = apply_runtime_defaults(spec, settings, name, PLAIN_KUBERNETES)
            inputs = RenderInputs(DatabaseSecrets("pw"), "", "digest", "0123456789abcdef0123456789abcdef")
            objects += render_model_registry(ref, effective, settings, PLAIN_KUBERNETES, inputs)

    failures = cluster.rejected_by_dry_run(objects)
    assert not failures, "\n".join(failures)
    assert {o["kind"] for o in objects} >= {"ClusterRoleBinding", "ConfigMap", "Deployment", "Service"}
