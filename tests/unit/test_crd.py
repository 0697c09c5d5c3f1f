"""The CRDs come from the pydantic models; the committed files must match them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from model_registry_operator.api.crd import all_crds, model_registry_crd
from model_registry_operator.cli import crd_filename

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crds_match_the_models() -> None:
    for directory in (ROOT / "crds", ROOT / "config" / "crd" / "bases"):
        for crd in all_crds():
            committed = yaml.safe_load((directory / crd_filename(crd)).read_text())
            assert committed == crd, f"{directory / crd_filename(crd)} is stale: run `make manifests`"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(_walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_walk(value, f"{path}[{i}]"))
    return found


def test_schema_is_structural() -> None:
    schema = model_registry_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node, path
        assert "title" not in node, path
        if "properties" in node and isinstance(node.get("properties"), dict) and "type" in node:
            assert "additionalProperties" not in node, path
            for name, prop in node["properties"].items():
                assert (
                    "type" in prop
                    or prop.get("x-kubernetes-int-or-string")
                    or prop.get("x-kubernetes-preserve-unknown-fields")
                ), f"{path}.{name} has no type"


def test_versions_names_and_columns() -> None:
    crd = model_registry_crd()
    assert crd["metadata"]["name"] == "modelregistries.modelregistry.opendatahub.io"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == ("ModelRegistry", "modelregistries", ["mr"])
    v1beta1, v1alpha1 = crd["spec"]["versions"]
    assert (v1beta1["name"], v1beta1["storage"], v1beta1["served"]) == ("v1beta1", True, True)
    assert (v1alpha1["name"], v1alpha1["storage"], v1alpha1["deprecated"]) == ("v1alpha1", False, True)
    assert "deprecated" in v1alpha1["deprecationWarning"]
    assert v1alpha1["schema"] == v1beta1["schema"], "one schema: the API server converts without a webhook"
    assert v1beta1["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in v1beta1["additionalPrinterColumns"]}
    assert list(columns) == ["Available", "Age", "Hosts", "Status"]
    assert columns["Hosts"]["priority"] == 1


def test_upstream_fields_defaults_and_rules() -> None:
    spec = model_registry_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    assert spec["required"] == ["rest"]
    assert props["rest"]["properties"]["port"] == {
        "default": 8080,
        "description": "Listen port of the REST API server.",
        "maximum": 65535,
        "minimum": 1,
        "type": "integer",
    }
    assert props["rest"]["properties"]["serviceRoute"]["enum"] == ["disabled", "enabled"]
    pg = props["postgres"]["properties"]
    assert pg["sslMode"]["default"] == "disable"
    assert pg["sslMode"]["enum"] == ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
    assert pg["port"]["default"] == 5432
    assert set(pg) >= {
        "host",
        "hostAddress",
        "username",
        "passwordSecret",
        "database",
        "skipDBCreation",
        "generateDeployment",
        "sslCertificateSecret",
        "sslKeySecret",
        "sslPasswordSecret",
        "sslRootCertificateConfigMap",
        "sslRootCertificateSecret",
        "image",
    }
    my = props["mysql"]
    assert my["required"] == ["host", "username", "database"]
    assert set(my["properties"]) >= {
        "sslRootCertificatesConfigMapName",
        "sslRootCertificatesSecretName",
        "sslCipher",
        "verifyServerCert",
    }
    assert {
        "enable_database_upgrade",
        "downgrade_db_schema_version",
        "oauthProxy",
        "kubeRBACProxy",
        "istio",
        "grpc",
    } <= set(props)
    assert props["kubeRBACProxy"]["properties"]["port"]["default"] == 8443
    assert props["kubeRBACProxy"]["properties"]["serviceRoute"]["default"] == "enabled"
    messages = [r["message"] for r in spec["x-kubernetes-validations"]]
    assert "exactly one of postgres or mysql must be set" in messages
    assert any("GenerateDeployment" in r["message"] for r in props["postgres"]["x-kubernetes-validations"])
    assert (
        props["rest"]["properties"]["resources"]["properties"]["limits"]["additionalProperties"][
            "x-kubernetes-int-or-string"
        ]
        is True
    )


def test_every_field_has_a_description() -> None:
    spec = model_registry_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for path, node in _walk(spec):
        if path.endswith(".properties"):  # a map of field name -> schema, not a schema
            continue
        for name, prop in (node.get("properties") or {}).items():
            assert prop.get("description"), f"{path}.{name} has no description"
