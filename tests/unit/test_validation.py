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


MY = {"host": "mysql.db.svc", "database": "model_registry", "username": "mlmduser"}
REF = {"name": "db-credentials", "key": "password"}


# (spec, field, words of the message): values that would reach a DSN, an argument or a
# template; the API server refuses the same (tests/integration/test_schema.py).
HOSTILE_SPECS: list[tuple[dict[str, Any], str, str]] = [
    ({"rest": {}, "postgres": {**PG, "host": "pg/db?sslmode=disable"}}, "spec.postgres.host", "RFC 1123 host"),
    ({"rest": {}, "postgres": {**PG, "host": "db\n"}}, "spec.postgres.host", "RFC 1123 host"),
    ({"rest": {}, "postgres": {**PG, "host": "-db"}}, "spec.postgres.host", "RFC 1123 host"),
    ({"rest": {}, "postgres": {**PG, "host": "a" * 64}}, "spec.postgres.host", "RFC 1123 host"),
    ({"rest": {}, "postgres": {**PG, "hostAddress": "1.2.3.4:5"}}, "spec.postgres.hostAddress", "IPv4 / IPv6"),
    ({"rest": {}, "postgres": {**PG, "hostAddress": "[::1]"}}, "spec.postgres.hostAddress", "IPv4 / IPv6"),
    ({"rest": {}, "mysql": {**MY, "host": "db:3306"}}, "spec.mysql.host", "RFC 1123 host"),
    ({"rest": {}, "mysql": {**MY, "host": "évil"}}, "spec.mysql.host", "RFC 1123 host"),
    ({"rest": {}, "postgres": {**PG, "username": "u" * 64}}, "spec.postgres.username", "at most 63"),
    ({"rest": {}, "postgres": {**PG, "username": "é" * 32}}, "spec.postgres.username", "63 bytes"),
    ({"rest": {}, "postgres": {**PG, "database": "a\nb"}}, "spec.postgres.database", "control characters"),
    ({"rest": {}, "postgres": {**PG, "database": "/db"}}, "spec.postgres.database", "start with '/'"),
    ({"rest": {}, "mysql": {**MY, "database": "d" * 65}}, "spec.mysql.database", "at most 64"),
    ({"rest": {}, "mysql": {**MY, "database": "db "}}, "spec.mysql.database", "end with a space"),
    ({"rest": {}, "mysql": {**MY, "username": "u" * 33}}, "spec.mysql.username", "at most 32"),
    ({"rest": {}, "mysql": {**MY, "username": "u:x"}}, "spec.mysql.username", "':'"),
    (
        {"rest": {}, "postgres": {"generateDeployment": True, "username": "my-user"}},
        "spec.postgres.username",
        "with generateDeployment",
    ),
    (
        {"rest": {}, "postgres": {"generateDeployment": True, "database": "1db"}},
        "spec.postgres.database",
        "with generateDeployment",
    ),
    (
        {"rest": {}, "postgres": {**PG, "passwordSecret": {"name": "Db_Secret", "key": "p"}}},
        "spec.postgres.passwordSecret.name",
        "Kubernetes object name",
    ),
    (
        {"rest": {}, "postgres": {**PG, "passwordSecret": {"name": "s", "key": "a: b"}}},
        "spec.postgres.passwordSecret.key",
        "Secret / ConfigMap key",
    ),
    (
        {"rest": {}, "postgres": {**PG, "passwordSecret": {"name": "s", "key": "k" * 254}}},
        "spec.postgres.passwordSecret.key",
        "at most 253",
    ),
    (
        {"rest": {}, "mysql": {**MY, "sslRootCertificatesSecretName": "a/b"}},
        "spec.mysql.sslRootCertificatesSecretName",
        "Kubernetes object name",
    ),
    ({"rest": {"image": "quay.io/x:🚀"}, "postgres": PG}, "spec.rest.image", "image reference"),
    ({"rest": {"image": "quay.io/x y"}, "postgres": PG}, "spec.rest.image", "image reference"),
    ({"rest": {"image": "Quay.io/X"}, "postgres": PG}, "spec.rest.image", "image reference"),
    (
        {"rest": {}, "postgres": {"generateDeployment": True, "image": "quay.io/x:🚀"}},
        "spec.postgres.image",
        "image reference",
    ),
    ({"rest": {}, "postgres": PG, "kubeRBACProxy": {"image": "x:🚀"}}, "spec.kubeRBACProxy.image", "image"),
    ({"rest": {}, "postgres": PG, "oauthProxy": {"image": "x@sha256:1"}}, "spec.oauthProxy.image", "image"),
    ({"rest": {}, "mysql": {**MY, "sslCipher": "$(X)"}}, "spec.mysql.sslCipher", "cipher list"),
    ({"rest": {}, "postgres": PG, "oauthProxy": {"port": 0}}, "spec.oauthProxy.port", "greater than or equal"),
    ({"rest": {}, "postgres": PG, "kubeRBACProxy": {"routePort": 0}}, "spec.kubeRBACProxy.routePort", "greater"),
    (
        {"rest": {}, "postgres": PG, "istio": {"gateway": {"rest": {"port": 0}}}},
        "spec.istio.gateway.rest.port",
        "greater than or equal",
    ),
    (
        {"rest": {"port": 8443}, "postgres": PG, "kubeRBACProxy": {}},
        "spec.kubeRBACProxy.port",
        "must differ from rest.port",
    ),
    (
        {"rest": {"port": 9000}, "postgres": PG, "oauthProxy": {"port": 9000}},
        "spec.oauthProxy.port",
        "must differ from rest.port",
    ),
    ({"rest": {}, "postgres": PG, "istio": {"authProvider": "a b"}}, "spec.istio.authProvider", "name of"),
    (
        {"rest": {}, "postgres": PG, "istio": {"authConfigLabels": {"a": "b c"}}},
        "spec.istio.authConfigLabels.a",
        "label value",
    ),
    (
        {"rest": {}, "postgres": PG, "istio": {"authConfigLabels": {"bad key": "v"}}},
        "spec.istio.authConfigLabels",
        "label keys",
    ),
    (
        {"rest": {}, "postgres": PG, "istio": {"authConfigLabels": {"x/" + "n" * 64: "v"}}},
        "spec.istio.authConfigLabels",
        "label keys",
    ),
    ({"rest": {}, "postgres": PG, "istio": {"audiences": ["a\nb"]}}, "spec.istio.audiences[0]", "control"),
    (
        {"rest": {}, "postgres": PG, "istio": {"gateway": {"istioIngress": "a b"}}},
        "spec.istio.gateway.istioIngress",
        "label value",
    ),
    (
        {"rest": {}, "postgres": PG, "istio": {"gateway": {"controlPlane": "x" * 64}}},
        "spec.istio.gateway.controlPlane",
        "at most 63",
    ),
    (
        {"rest": {}, "postgres": PG, "istio": {"gateway": {"rest": {"tls": {"credentialName": "a_b"}}}}},
        "spec.istio.gateway.rest.tls.credentialName",
        "Kubernetes object name",
    ),
    (
        {"rest": {}, "postgres": PG, "istio": {"gateway": {"domain": "a..b"}}},
        "spec.istio.gateway.domain",
        "DNS domain",
    ),
    ({"rest": {}, "postgres": PG, "oauthProxy": {"domain": "x/y"}}, "spec.oauthProxy.domain", "DNS domain"),
]


@pytest.mark.parametrize(("spec", "field", "text"), HOSTILE_SPECS)
def test_values_reaching_dsns_arguments_and_templates_are_checked(spec: dict[str, Any], field: str, text: str) -> None:
    parsed, problems = parse_spec(spec)
    assert parsed is None
    assert any(p.field == field and text in p.message for p in problems), problems


# Upstream-style values that must stay valid (the API server takes them too).
LEGITIMATE_SPECS: list[dict[str, Any]] = [
    {"rest": {}, "postgres": {**PG, "host": "pg.db.svc.cluster.local"}},
    {"rest": {}, "postgres": {**PG, "host": "DB.Example.com."}},
    {"rest": {}, "postgres": {**PG, "hostAddress": "10.1.2.3"}},
    {"rest": {}, "postgres": {**PG, "hostAddress": "2001:db8::1"}},
    {"rest": {}, "postgres": {**PG, "host": "", "hostAddress": "::1"}},
    {"rest": {}, "postgres": {**PG, "database": "model_registry", "username": "mlmduser@corp"}},
    {"rest": {}, "postgres": {**PG, "database": "My Registry-DB", "username": "Ünïcode"}},
    {"rest": {}, "postgres": {**PG, "username": "u" * 63, "database": "d" * 63}},
    {"rest": {}, "mysql": {**MY, "host": "10.0.0.5", "username": "u" * 32, "database": "d" * 64}},
    {"rest": {}, "mysql": {**MY, "host": "::1", "username": "user@host", "database": "my-db.v2"}},
    {"rest": {}, "postgres": {"generateDeployment": True, "username": "modelregistry", "database": "mr_1"}},
    {"rest": {}, "postgres": {"generateDeployment": True, "username": "", "database": ""}},
    {"rest": {"image": "quay.io/opendatahub/model-registry:v0.3.0"}, "postgres": PG},
    {"rest": {"image": "localhost:5000/a/b_c__d.e-f---g:1.0"}, "postgres": PG},
    {"rest": {"image": "[::1]:5000/mr@sha256:" + "a" * 64}, "postgres": PG},
    {"rest": {"image": "registry.redhat.io/rhoai/mr@sha256:" + "0" * 64}, "postgres": PG},
    {"rest": {"image": ""}, "postgres": PG},
    {"rest": {"port": 8080}, "postgres": PG, "kubeRBACProxy": {"port": 8443}},
    {"rest": {}, "postgres": {**PG, "passwordSecret": {"name": "db.credentials-1", "key": "database-password"}}},
    {"rest": {}, "postgres": {**PG, "passwordSecret": {"name": "s", "key": ".dockerconfigjson"}}},
    {"rest": {}, "mysql": {**MY, "sslCipher": "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"}},
    {
        "rest": {},
        "postgres": PG,
        "istio": {
            "authProvider": "odh-auth-provider",
            "authConfigLabels": {"security.opendatahub.io/authorization-group": "default", "team": ""},
            "audiences": ["https://kubernetes.default.svc", "api"],
            "gateway": {
                "istioIngress": "ingressgateway",
                "controlPlane": "data-science-smcp",
                "domain": "apps.example.com",
                "rest": {
                    "port": 443,
                    "tls": {"mode": "SIMPLE", "credentialName": "modelregistry-sample-rest-cert"},
                },
            },
        },
    },
]


@pytest.mark.parametrize("spec", LEGITIMATE_SPECS)
def test_legitimate_values_are_accepted(spec: dict[str, Any]) -> None:
    parsed, problems = parse_spec(spec)
    assert problems == []
    assert parsed is not None


# (metadata.name, spec, valid?): the root rule of the CRD and parse_spec(name=...) agree.
NAMES: list[tuple[str, dict[str, Any], bool]] = [
    ("modelregistry-sample", {"rest": {}, "postgres": PG}, True),
    ("a" * 63, {"rest": {}, "postgres": PG}, True),
    ("a" * 64, {"rest": {}, "postgres": PG}, False),
    ("a" * 58, {"rest": {}, "postgres": PG, "kubeRBACProxy": {}}, True),
    ("a" * 59, {"rest": {}, "postgres": PG, "oauthProxy": {}}, False),
    ("a" * 59, {"rest": {}, "postgres": PG, "istio": {}}, True),
    ("a" * 59, {"rest": {}, "postgres": PG, "istio": {"gateway": {}}}, False),
    ("a" * 54, {"rest": {}, "postgres": {"generateDeployment": True}}, True),
    ("a" * 55, {"rest": {}, "postgres": {"generateDeployment": True}}, False),
    ("reg.v1", {"rest": {}, "postgres": PG}, False),
    ("1reg", {"rest": {}, "postgres": PG}, False),
    ("Reg", {"rest": {}, "postgres": PG}, False),
]


@pytest.mark.parametrize(("name", "spec", "ok"), NAMES)
def test_registry_names_keep_every_derived_name_valid(name: str, spec: dict[str, Any], ok: bool) -> None:
    parsed, problems = parse_spec(spec, name=name)
    if ok:
        assert problems == []
    else:
        assert parsed is None
        assert [p.field for p in problems] == ["metadata.name"]
        assert "at most 54 with postgres.generateDeployment" in problems[0].message


def test_issue_example_sixty_character_name_with_generate_deployment() -> None:
    """Issue 12: a 60-character name with generateDeployment gave a 69-character Service."""
    parsed, problems = parse_spec({"rest": {}, "postgres": {"generateDeployment": True}}, name="r" * 60)
    assert parsed is None
    assert problems[0].field == "metadata.name"
    assert "at most 54" in problems[0].message


def test_spec_that_is_not_an_object_is_a_problem() -> None:
    parsed, problems = parse_spec("reg")  # type: ignore[arg-type]
    assert parsed is None
    assert problems[0].field == "spec"
