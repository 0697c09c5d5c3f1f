"""Generated ModelRegistry and ModelUploadJob objects: refused naming the field, or rendered safely.

Each object is created (dry run, strict field validation) through the real API server; what it
stores goes through the operator's validation and the pure render (every capability set for a
ModelRegistry), and what that renders must pass the properties in ``harness.py``: strict
validation by the API server, DSNs that the drivers parse to what the spec says, no kubelet
expansion, one string per argument, names and labels Kubernetes allows, no secret outside a
Secret, no REST port around the proxy, no token over plain HTTP.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from .conftest import EXAMPLES, FUZZ
from .harness import ApiServer, check_registry, check_upload
from .strategies import TARGET_REGISTRIES, names, registry_specs, upload_specs

pytestmark = pytest.mark.integration


@settings(FUZZ, max_examples=EXAMPLES)
@given(name=names(), case=registry_specs())
def test_generated_model_registries(fuzz_api: ApiServer, name: str, case: tuple[dict[str, Any], list[str]]) -> None:
    spec, mutations = case
    outcome = check_registry(fuzz_api, name, spec, mutations)
    event(f"ModelRegistry {outcome.stage}")


@settings(FUZZ, max_examples=EXAMPLES)
@given(name=names(), case=upload_specs(), target=st.sampled_from(sorted(TARGET_REGISTRIES)))
def test_generated_model_upload_jobs(
    fuzz_api: ApiServer, name: str, case: tuple[dict[str, Any], list[str]], target: str
) -> None:
    spec, mutations = case
    outcome = check_upload(fuzz_api, name, spec, TARGET_REGISTRIES[target], mutations)
    event(f"ModelUploadJob {outcome.stage}")
