"""The offline render (``model-registry-operator render``) next to what the operator applied on
the test cluster: the same objects for the same optional APIs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from model_registry_operator.kinds import KINDS

from .kube import MR, Cluster, wait_for

Obj = dict[str, Any]
Ref = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name
COMMAND = Path(sys.executable).parent / "model-registry-operator"


def render(text: str, *args: str, env: dict[str, str] | None = None) -> dict[Ref, Obj]:
    """The objects of ``render -f - ARGS`` on ``text``, the console command run as a user runs it
    (the operator's settings from the environment, as the operator under test has them)."""
    result = subprocess.run(
        [str(COMMAND), "render", "-f", "-", *args],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # nothing left out: every API the registry needs is served
    return {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
        for o in yaml.safe_load_all(result.stdout)
        if o
    }


# Kinds that are never a registry's own objects (workloads' pods, the Service's endpoints, ...).
NOT_RENDERED = {"Pod", "Event", "EndpointSlice", "ModelRegistry", "ModelUploadJob"}


def applied_by_operator(cluster: Cluster, namespace: str, name: str) -> dict[Ref, Obj]:
    """Every object the operator made for a registry, as it finds them to prune: owned by it in its
    namespace, or labelled with it elsewhere (cluster-scoped, other namespaces)."""
    served = {g["name"] for g in cluster.kube.request_sync("GET", "/apis").get("groups") or []}
    mr = cluster.get(MR, namespace, name)
    assert mr is not None
    uid = mr["metadata"]["uid"]
    selector = f"modelregistry.opendatahub.io/registry={name},modelregistry.opendatahub.io/namespace={namespace}"
    found: dict[Ref, Obj] = {}
    for kind in KINDS.values():
        group = kind.api_version.rpartition("/")[0]
        if kind.kind in NOT_RENDERED or (group and group not in served):
            continue
        owned = [
            o
            for o in (cluster.list(kind, namespace) if kind.namespaced else [])
            if any(ref.get("uid") == uid for ref in o["metadata"].get("ownerReferences") or [])
        ]
        for obj in owned + cluster.list(kind, None, selector):
            meta = obj["metadata"]
            found[(kind.kind, meta.get("namespace", ""), meta["name"])] = obj
    return found


def assert_applied(
    cluster: Cluster, namespace: str, name: str, rendered: dict[Ref, Obj], same_spec: tuple[str, ...] = ()
) -> None:
    """The operator applied exactly the rendered objects; those of the kinds ``same_spec`` (no
    secret values, no digests) with the same spec."""
    # The status is written after a reconcile has applied (and pruned) everything.
    wait_for(lambda: cluster.condition(namespace, name, "Available"), what=f"a first reconcile of {name}")
    live = applied_by_operator(cluster, namespace, name)
    assert sorted(live) == sorted(rendered)
    for ref in sorted(rendered):
        if ref[0] in same_spec:
            assert live[ref]["spec"] == rendered[ref]["spec"], ref
