"""Spec validation names the offending field (the reconcile's re-check of the CEL rules)."""

from __future__ import annotations

from typing import Any

import pytest

from model_registry_operator.api.validation import parse_spec

PG = {"host": "db", "database": "d", "username": "u"}


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ({"rest": {}}, "spec.postgres", "exactly one of postgres or mysql"),
        (
            {"rest": {}, "postgres": PG, "mysql": {"host": "h", "database": "d", "username": "u"}},
            "spec.mysql",
            "exactly one of postgres or mysql",
        ),
        ({"rest": {"port": 0}, "postgres": PG}, "spec.rest.port", "greater than or equal to 1"),
        ({"rest": {"port": 70000}, "postgres": PG}, "spec.rest.port", "less than or equal to 65535"),
        ({"postgres": PG}, "spec.rest", "Field required"),
        ({"rest": {}, "postgres": {**PG, "sslMode": "sometimes"}}, "spec.postgres.sslMode", "'disable'"),
        (
            {"rest": {}, "postgres": {**PG, "sslCertificateSecret": {"name": "c", "key": "k"}}},
            "spec.postgres.sslKeySecret",
            "MUST be set together",
        ),
        ({"rest": {}, "postgres": {"database": "d"}}, "spec.postgres.host", "GenerateDeployment must be set"),
        ({"rest": {}, "postgres": {"host": "h", "database": "d"}}, "spec.postgres.username", "Username must be set"),
        (
            {"rest": {}, "postgres": {"generateDeployment": True, "host": "h"}},
            "spec.postgres.host",
            "must not be set when generateDeployment",
        ),
        (
            {"rest": {}, "postgres": PG, "kubeRBACProxy": {}, "oauthProxy": {}},
            "spec.kubeRBACProxy",
            "at most one of oauthProxy, kubeRBACProxy and istio",
        ),
        (
            {"rest": {}, "postgres": PG, "kubeRBACProxy": {"tlsKeySecret": {"name": "a", "key": "b"}}},
            "spec.kubeRBACProxy.tlsKeySecret",
            "MUST be set together",
        ),
        ({"rest": {}, "mysql": {"host": "h", "database": "d"}}, "spec.mysql.username", "Field required"),
        (
            {"rest": {}, "postgres": {**PG, "passwordSecret": {"name": "s"}}},
            "spec.postgres.passwordSecret.key",
            "Field required",
        ),
        ({"rest": {}, "postgres": {**PG, "bogus": 1}}, "spec.postgres.bogus", "Extra inputs are not permitted"),
    ],
)
def test_invalid_specs_name_the_field(spec: dict[str, Any], field: str, text: str) -> None:
    parsed, problems = parse_spec(spec)
    assert parsed is None
    assert any(p.field == field and text in p.message for p in problems), problems


def test_upstream_samples_are_valid() -> None:
    spec, problems = parse_spec(
        {
            "grpc": {"port": 9090},
            "rest": {"port": 8080, "serviceRoute": "disabled"},
            "mysql": {
                "host": "model-registry-db",
                "database": "model_registry",
                "username": "modelregistryuser",
                "port": 3306,
                "passwordSecret": {"name": "model-registry-db", "key": "database-password"},
                "skipDBCreation": False,
            },
            "enable_database_upgrade": True,
        }
    )
    assert problems == []
    assert spec is not None
    assert spec.mysql is not None
    assert spec.mysql.password_secret is not None
    assert spec.mysql.password_secret.key == "database-password"
    assert spec.enable_database_upgrade is True


def test_generate_deployment_alone_is_valid() -> None:
    spec, problems = parse_spec({"rest": {}, "postgres": {"generateDeployment": True}})
    assert problems == []
    assert spec is not None
