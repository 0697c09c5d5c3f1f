"""Container resources in a spec: what Kubernetes would refuse in the Pod is refused on the spec."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from model_registry_operator import yamljson
from model_registry_operator.api.validation import parse_spec

PG = {"host": "pg.example.svc", "database": "model_registry", "username": "mlmduser"}


def problems(resources: dict[str, Any]) -> list[str]:
    spec, found = parse_spec({"rest": {"resources": resources}, "postgres": PG}, name="reg")
    assert (spec is None) == bool(found)
    return [str(p) for p in found]


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"limits": {"": 0}}, "spec.rest.resources.limits: key ''"),  # found by the fuzz suite
        ({"limits": {"nvidia.com/gpu": 1}}, "key 'nvidia.com/gpu'"),
        ({"requests": {"memory": "-1Gi"}}, "is not a quantity"),
        ({"requests": {"memory": -1}}, "is negative"),
        ({"requests": {"cpu": "lots"}}, "is not a quantity"),
        ({"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}, "requests.memory (1Gi) must not exceed"),
    ],
)
def test_refused_resources_name_the_field(resources: dict[str, Any], expected: str) -> None:
    found = problems(resources)
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(
    "resources",
    [
        {},
        {"limits": {"memory": "1Gi", "cpu": 2, "ephemeral-storage": "1G"}},
        {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}},
        {"requests": {"memory": "1e3"}},
    ],
)
def test_usual_resources_pass(resources: dict[str, Any]) -> None:
    assert problems(resources) == []


@pytest.mark.parametrize("value", ["🚀 beyond the BMP", "\x7f del", "\x85 next line", "\u2028", "\x00", "plain"])
def test_yamljson_reads_back_as_the_value(value: str) -> None:
    text = yamljson.dumps({"k": [value]})
    assert yaml.safe_load(text) == {"k": [value]}
    assert text.isascii()
