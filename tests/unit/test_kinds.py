"""The table of kinds (kinds.py): every object the operator renders is of a kind its pruning and
finalizer know (the ClusterRole generated from it: test_rbac_manifests.py)."""

from __future__ import annotations

import itertools

import pytest

from model_registry_operator import kinds
from model_registry_operator.handlers import modelregistry as registry_handlers
from model_registry_operator.handlers import modeluploadjob as upload_handlers
from model_registry_operator.kinds import ALL, KINDS, PRUNABLE, UNOWNED, served
from model_registry_operator.names import MODEL_REGISTRY_KIND, MODEL_UPLOAD_JOB_KIND
from model_registry_operator.settings import OperatorSettings

from .cases import DATABASES
from .test_render_security import CLUSTERS, MODES, RESTS, render


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
