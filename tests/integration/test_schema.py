"""Rendered objects validated by the real API server: server-side dry-run apply, strict field validation."""

from __future__ import annotations

import itertools

import pytest

from model_registry_operator.api.validation import parse_spec
from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES
from model_registry_operator.render.database import DatabaseSecrets
from model_registry_operator.render.defaults import apply_runtime_defaults
from model_registry_operator.render.modelregistry import RegistryRef, RenderInputs, render_model_registry
from model_registry_operator.settings import OperatorSettings
from tests.unit.cases import ANNOTATIONS, DATABASES, RESTS, spec_for

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
