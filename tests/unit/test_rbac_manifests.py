"""The operator's RBAC (config/rbac) is generated from the table of kinds: the committed files are
the generated ones, they hold no escalate / bind / wildcard, and the operator holds every
permission the Roles and bindings it renders grant, so the API server lets it create them."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_registry_operator import kinds, rbac
from model_registry_operator.api.modeluploadjob import ModelUploadJobSpec
from model_registry_operator.kinds import ALL, EXTRA_RULES, Rule
from model_registry_operator.render.modeluploadjob import UploadJobRef, render_model_upload_job

from .cases import DATABASES
from .test_render_security import CLUSTERS, MODES, RESTS, render
from .upload_cases import ENDPOINT, spec_raw

RBAC_DIR = Path(__file__).resolve().parents[2] / rbac.RBAC_DIR
REF = UploadJobRef("up", "ns1", "uid-1")

AUTH_DELEGATOR = "system:auth-delegator"
BOOTSTRAP_CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    AUTH_DELEGATOR: [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
    ]
}
"""The rules of the API server's bootstrap ClusterRoles the operator binds (the integration test
``test_rbac_least_privilege`` compares them with the live ones)."""


def _committed_rules() -> list[dict[str, Any]]:
    role = yaml.safe_load((RBAC_DIR / rbac.ROLE_FILE).read_text())
    assert role["kind"] == "ClusterRole"
    assert role["metadata"]["name"] == rbac.CLUSTER_ROLE
    rules: list[dict[str, Any]] = role["rules"]
    return rules


@pytest.mark.parametrize("name", list(rbac.manifests()))
def test_committed_rbac_is_the_generated_one(name: str) -> None:
    committed = (RBAC_DIR / name).read_text()
    assert committed == rbac.manifests()[name], (
        f"config/rbac/{name} differs from what operator/model_registry_operator/kinds.py generates: "
        "run `make manifests` and commit the result"
    )


def test_the_role_grants_every_verb_of_the_table() -> None:
    rules = _committed_rules()
    needed = [(k.group, k.plural, verb) for k in ALL for verb in k.verbs]
    needed += [(k.group, f"{k.plural}/{sub}", verb) for k in ALL for sub, verbs in k.subresources for verb in verbs]
    needed += [
        (group, resource, verb)
        for r in EXTRA_RULES
        if not r.resource_names
        for group, resource, verb in itertools.product(r.api_groups, r.resources, r.verbs)
    ]
    assert [n for n in needed if not rbac.covers(rules, *n)] == []
    # Rules for named objects only grant them for those names.
    named = [
        (group, resource, verb, name)
        for r in EXTRA_RULES
        for group, resource, verb, name in itertools.product(r.api_groups, r.resources, r.verbs, r.resource_names)
    ]
    assert [n for n in named if not rbac.covers(rules, *n)] == []
    # and nothing else: every rule of the role comes from one row
    assert len(rules) == len(rbac.cluster_role_rules())
    assert not rbac.covers(rules, "", "pods", "delete")
    assert not rbac.covers(rules, "", "namespaces", "list")


def test_no_escalate_bind_or_wildcard() -> None:
    for name in rbac.manifests():
        for rule in yaml.safe_load((RBAC_DIR / name).read_text())["rules"]:
            assert not set(rule["verbs"]) & {"escalate", "bind", "impersonate", "*"}, rule
            assert "*" not in rule["resources"], rule
            assert "*" not in rule["apiGroups"], rule


def test_a_forbidden_verb_in_the_table_is_refused() -> None:
    bad = Rule(("rbac.authorization.k8s.io",), ("roles",), ("escalate",), "no")
    with pytest.raises(ValueError, match="roles: verbs \\['escalate'\\]"):
        rbac.cluster_role_text(rbac.cluster_role_rules(extra=(*EXTRA_RULES, bad)))


def test_a_new_permission_is_one_row() -> None:
    """A kind added to the table (a webhook configuration, say) is in the role with its verbs."""
    hook = kinds.Kind(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        namespaced=False,
        verbs=("get", "patch"),
    )
    text = rbac.cluster_role_text(rbac.cluster_role_rules((*ALL, hook)))
    rules = yaml.safe_load(text)["rules"]
    assert rbac.covers(rules, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "patch")
    assert "# ValidatingWebhookConfiguration: " in text
    assert len(rules) == len(rbac.cluster_role_rules()) + 1
    # the same verbs in another order make the same rule
    reordered = dataclasses.replace(kinds.DEPLOYMENT, verbs=tuple(reversed(kinds.DEPLOYMENT.verbs)))
    assert rbac.cluster_role_rules(tuple(reordered if k is kinds.DEPLOYMENT else k for k in ALL)) == (
        rbac.cluster_role_rules()
    )


def _rendered() -> list[dict[str, Any]]:
    """Every object the operator renders, in every mode, on a cluster serving every optional API."""
    raw = spec_raw("s3", "oci", "create_model")
    objects = render_model_upload_job(REF, ModelUploadJobSpec.model_validate(raw), raw, ENDPOINT, "quay.io/x/op:1")
    for mode, rest in itertools.product(MODES, RESTS):
        spec = {"rest": dict(RESTS[rest]), **DATABASES["postgres"], **MODES[mode]}
        objects += render(spec, CLUSTERS["everything"])[0]
    return objects


def test_the_operator_holds_what_its_roles_and_bindings_grant() -> None:
    """RBAC's escalation check: the API server lets the operator create a Role, or a binding of a
    role, only when it holds every permission the role grants (else it asks for escalate / bind,
    which the operator does not have)."""
    held = _committed_rules()
    objects = _rendered()
    roles = {(o["metadata"]["name"]): o["rules"] for o in objects if o["kind"] == "Role"}
    assert {r for rules in roles.values() for rule in rules for r in rule["resources"]} >= {
        "services",
        "endpoints",
        "modeluploadjobs/status",
    }
    for name, rules in roles.items():
        assert rbac.not_held(held, rules) == [], f"creating Role {name} needs escalate"
    bindings = [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert {b["roleRef"]["kind"] for b in bindings} == {"Role", "ClusterRole"}
    for binding in bindings:
        ref = binding["roleRef"]
        granted = roles[ref["name"]] if ref["kind"] == "Role" else BOOTSTRAP_CLUSTER_ROLES[ref["name"]]
        assert rbac.not_held(held, granted) == [], f"{binding['kind']} {binding['metadata']['name']} needs bind"


def test_escalation_check_sees_what_is_not_held() -> None:
    """The check above fails when the operator lacks a granted permission (or holds it for
    other objects only)."""
    without_endpoints = [r for r in _committed_rules() if r["resources"] != ["endpoints"]]
    user_role = [{"apiGroups": [""], "resources": ["services", "endpoints"], "resourceNames": ["r"], "verbs": ["get"]}]
    assert rbac.not_held(without_endpoints, user_role) == ["get endpoints/r"]
    named = [{"apiGroups": [""], "resources": ["endpoints"], "resourceNames": ["other"], "verbs": ["get"]}]
    assert rbac.not_held(named, user_role[:1]) == ["get services/r", "get endpoints/r"]
    assert rbac.not_held(without_endpoints, BOOTSTRAP_CLUSTER_ROLES[AUTH_DELEGATOR]) == []


def test_the_rbac_command_writes_the_files(tmp_path: Path) -> None:
    from model_registry_operator.cli import main

    assert main(["rbac", "-o", str(tmp_path)]) == 0
    for name, text in rbac.manifests().items():
        assert (tmp_path / name).read_text() == text
