"""The table of kinds (kinds.py): the committed ClusterRole grants what it says the operator
needs, and every object the operator renders is of a kind its pruning and finalizer know."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_registry_operator import kinds
from model_registry_operator.api.modeluploadjob import ModelUploadJobSpec
from model_registry_operator.handlers import modelregistry as registry_handlers
from model_registry_operator.handlers import modeluploadjob as upload_handlers
from model_registry_operator.kinds import ALL, EXTRA_RULES, KINDS, PRUNABLE, UNOWNED, served
from model_registry_operator.names import MODEL_REGISTRY_KIND, MODEL_UPLOAD_JOB_KIND
from model_registry_operator.render.modeluploadjob import UploadJobRef, render_model_upload_job
from model_registry_operator.settings import OperatorSettings

from .cases import DATABASES
from .test_render_security import CLUSTERS, MODES, RESTS, render
from .upload_cases import ENDPOINT, spec_raw

REF = UploadJobRef("up", "ns1", "uid-1")
ROLE = Path(__file__).resolve().parents[2] / "config" / "rbac" / "role.yaml"


def _rules() -> list[dict[str, Any]]:
    role = yaml.safe_load(ROLE.read_text())
    assert role["kind"] == "ClusterRole"
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def _granted(rules: list[dict[str, Any]], group: str, resource: str, verb: str, names: tuple[str, ...] | None) -> bool:
    for rule in rules:
        restricted = rule.get("resourceNames")
        if restricted and not (names and set(names) <= set(restricted)):
            continue  # a rule for some objects only grants nothing for the whole kind
        if (
            group in rule.get("apiGroups", [])
            and resource in rule.get("resources", [])
            and verb in rule.get("verbs", [])
        ):
            return True
    return False


def _needed() -> list[tuple[str, str, str, tuple[str, ...] | None]]:
    needed = []
    for kind in ALL:
        needed += [(kind.group, kind.plural, verb, None) for verb in kind.verbs]
        for sub, verbs in kind.subresources:
            needed += [(kind.group, f"{kind.plural}/{sub}", verb, None) for verb in verbs]
    for rule in EXTRA_RULES:
        for group, resource, verb in itertools.product(rule["apiGroups"], rule["resources"], rule["verbs"]):
            names = rule.get("resourceNames")
            needed.append((group, resource, verb, tuple(names) if names else None))
    return needed


def test_cluster_role_grants_every_verb_of_the_table() -> None:
    rules = _rules()
    missing = [
        f"{group or 'core'}/{resource}: {verb}"
        for group, resource, verb, names in _needed()
        if not _granted(rules, group, resource, verb, names)
    ]
    assert not missing, f"config/rbac/role.yaml lacks {missing}"


def test_grant_check_sees_a_missing_verb() -> None:
    """The check above fails for a verb the role does not grant (and a name-restricted grant)."""
    rules = _rules()
    assert not _granted(rules, "", "pods", "delete", None)
    assert not _granted(rules, "rbac.authorization.k8s.io", "clusterroles", "bind", None)
    assert _granted(rules, "rbac.authorization.k8s.io", "clusterroles", "bind", ("system:auth-delegator",))


def test_table_is_consistent() -> None:
    assert len(KINDS) == len(ALL)
    for kind in ALL:
        assert kind.verbs, kind
        assert not (kind.unowned and not kind.verbs.count("delete")), f"{kind.kind}: the finalizer deletes it"
        assert not (kind.prunable and "delete" not in kind.verbs), f"{kind.kind}: pruning deletes it"
        assert kind.namespaced or not kind.prunable, f"{kind.kind}: cluster-scoped objects are unowned"
        if kind.optional:
            assert kind.capability in {f.name for f in CLUSTERS["everything"].__dataclass_fields__.values()}


def test_handlers_watch_the_kinds_of_the_table() -> None:
    assert [k.resource for k in ALL if MODEL_REGISTRY_KIND in k.watched] == registry_handlers.CHILD_RESOURCES
    assert {plural for _, _, plural in upload_handlers.CHILDREN} == {"jobs", "pods"}
    assert kinds.MODEL_REGISTRY.resource == registry_handlers.RESOURCE
    assert kinds.MODEL_UPLOAD_JOB.resource == upload_handlers.RESOURCE
    assert all(MODEL_UPLOAD_JOB_KIND not in k.watched or k.namespaced for k in ALL)


def test_served_kinds_follow_the_optional_apis() -> None:
    plain = {k.kind for k in served(PRUNABLE, CLUSTERS["kubernetes"].groups)}
    assert "Route" not in plain
    assert "Deployment" in plain
    everything = {k.kind for k in served(PRUNABLE + UNOWNED, CLUSTERS["everything"].groups)}
    assert everything == {k.kind for k in PRUNABLE + UNOWNED}
    assert {k.kind for k in served(UNOWNED, CLUSTERS["kubernetes"].groups)} == {"ClusterRoleBinding"}


def _role_rules(objects: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (group, resource, verb)
        for obj in objects
        if obj["kind"] == "Role"
        for rule in obj["rules"]
        for group, resource, verb in itertools.product(rule["apiGroups"], rule["resources"], rule["verbs"])
    ]


def test_the_operator_holds_what_its_roles_grant() -> None:
    """The API server lets the operator create the Roles it renders (a registry's user Role, an
    upload's progress Role) only when it holds what they grant: the ClusterRole must cover them."""
    raw = spec_raw("s3", "oci", "create_model")
    upload = render_model_upload_job(REF, ModelUploadJobSpec.model_validate(raw), raw, ENDPOINT, "quay.io/x/op:1")
    registry, _features = render({"rest": {}, **DATABASES["postgres"]}, CLUSTERS["everything"])
    granted = _role_rules(upload) + _role_rules(registry)
    assert {resource for _, resource, _ in granted} >= {"services", "endpoints", "modeluploadjobs/status"}
    rules = _rules()
    missing = [g for g in granted if not _granted(rules, *g, None)]
    assert not missing, f"config/rbac/role.yaml lacks {missing}"
    needed = set(_needed())
    assert not [g for g in granted if (*g, None) not in needed], "kinds.py must name what the Roles grant"


GATEWAY_SETTINGS = OperatorSettings(GATEWAY_DOMAIN="gw.example", HTTPROUTE_NAMESPACE="routes", GATEWAY_NAME="gw")


@pytest.mark.parametrize(("mode", "rest", "cluster"), list(itertools.product(MODES, RESTS, CLUSTERS)))
def test_every_rendered_kind_is_pruned_or_finalized(mode: str, rest: str, cluster: str) -> None:
    """A kind the render makes but pruning never lists would leak objects after a mode switch."""
    for database in ("postgres", "postgres-generated"):
        spec = {"rest": dict(RESTS[rest]), **DATABASES[database], **MODES[mode]}
        objects, _features = render(spec, CLUSTERS[cluster], GATEWAY_SETTINGS)
        for obj in objects:
            kind = kinds.kind_of(obj)
            assert kind.prunable or kind.unowned, f"{kind.kind} is neither pruned nor finalized"
            meta = obj["metadata"]
            if not kind.namespaced or meta.get("namespace", "ns1") != "ns1":
                assert kind.unowned, f"{kind.kind} {meta['name']}: no owner reference collects it"
            if kind.optional:
                assert kind.group in CLUSTERS[cluster].groups, f"{kind.kind} rendered without its API"
