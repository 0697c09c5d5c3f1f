"""What the watches saw of each registry's Deployment, pods and endpoint slices.

kopf hands every event of our children to the handlers; keeping a compact copy of the
few fields the status needs turns a status refresh into pure computation instead of three
API round trips per event (the difference between hundreds and thousands of registries).
The copies are kept as JSON text: one string per object instead of dozens of small dicts
and lists, which at a thousand registries is megabytes of the operator's memory.
"""

from __future__ import annotations

import json
from typing import Any

from ..names import LEGACY_COMPONENT_LABEL, REGISTRY_COMPONENT, REGISTRY_LABEL, SERVICE_NAME_LABEL

Obj = dict[str, Any]
Key = tuple[str, str]


def _condition(cond: Obj) -> Obj:
    return {k: cond[k] for k in ("type", "status", "reason", "message") if cond.get(k) is not None}


def _compact_deployment(body: Obj) -> Obj:
    status = body.get("status") or {}
    counts = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    return {
        "metadata": {"generation": body.get("metadata", {}).get("generation", 0)},
        "spec": {"replicas": (body.get("spec") or {}).get("replicas", 1)},
        "status": {
            **{k: status[k] for k in counts if k in status},
            "conditions": [_condition(c) for c in status.get("conditions") or []],
        },
    }


def _container_status(cs: Obj) -> Obj:
    compact: Obj = {"name": cs.get("name"), "ready": bool(cs.get("ready"))}
    waiting = (cs.get("state") or {}).get("waiting")
    if waiting is not None:
        compact["state"] = {"waiting": {k: waiting[k] for k in ("reason", "message") if k in waiting}}
    terminated = (cs.get("lastState") or {}).get("terminated")
    if terminated is not None:
        compact["lastState"] = {"terminated": {k: terminated[k] for k in ("exitCode", "message") if k in terminated}}
    return compact


def _compact_pod(body: Obj) -> Obj:
    meta, status = body.get("metadata", {}), body.get("status") or {}
    compact: Obj = {k: status[k] for k in ("phase", "reason", "message") if k in status}
    compact["conditions"] = [_condition(c) for c in status.get("conditions") or []]
    for key in ("containerStatuses", "initContainerStatuses"):
        if key in status:
            compact[key] = [_container_status(cs) for cs in status[key] or []]
    return {"metadata": {k: meta[k] for k in ("name", "deletionTimestamp") if k in meta}, "status": compact}


def _text(value: Obj) -> str:
    return json.dumps(value, separators=(",", ":"))


def _ready(body: Obj) -> int:
    return sum(
        1
        for ep in body.get("endpoints") or []
        if (ep.get("conditions") or {}).get("ready", True) and ep.get("addresses")
    )


class ObservedChildren:
    """Compact, event-fed view of the objects the status is computed from."""

    def __init__(self) -> None:
        self._deployments: dict[Key, str] = {}
        self._pods: dict[Key, dict[str, str]] = {}
        self._slices: dict[Key, dict[str, int]] = {}

    def update(self, event_type: str | None, body: Obj) -> Key | None:
        """Record one watch event; returns the registry whose status it may change."""
        meta = body.get("metadata") or {}
        namespace, name, kind = meta.get("namespace"), meta.get("name", ""), body.get("kind")
        labels = meta.get("labels") or {}
        gone = event_type == "DELETED"
        if kind == "EndpointSlice":
            owner = labels.get(SERVICE_NAME_LABEL)
            if not namespace or not owner or labels.get(REGISTRY_LABEL) != owner:
                return None
            key = (namespace, owner)
            slices = self._slices.setdefault(key, {})
            if gone:
                slices.pop(name, None)
            else:
                slices[name] = _ready(body)
            return key
        owner = labels.get(REGISTRY_LABEL)
        if not namespace or not owner:
            return None
        key = (namespace, owner)
        if kind == "Deployment" and name == owner:
            if gone:
                self._deployments.pop(key, None)
            else:
                self._deployments[key] = _text(_compact_deployment(body))
            return key
        if kind == "Pod" and labels.get(LEGACY_COMPONENT_LABEL) == REGISTRY_COMPONENT:
            pods = self._pods.setdefault(key, {})
            if gone:
                pods.pop(name, None)
            else:
                pods[name] = _text(_compact_pod(body))
            return key
        return None

    def deployment(self, key: Key) -> Obj | None:
        text = self._deployments.get(key)
        return None if text is None else json.loads(text)

    def pods(self, key: Key) -> list[Obj]:
        return [json.loads(text) for text in self._pods.get(key, {}).values()]

    def ready_endpoints(self, key: Key) -> int:
        return sum(self._slices.get(key, {}).values())

    def replace(self, key: Key, pods: list[Obj], slices: list[Obj]) -> None:
        """Start over from a fresh listing (repairs anything a dropped watch missed)."""
        self._pods[key] = {p["metadata"]["name"]: _text(_compact_pod(p)) for p in pods}
        self._slices[key] = {s["metadata"]["name"]: _ready(s) for s in slices}

    def forget(self, key: Key) -> None:
        self._deployments.pop(key, None)
        self._pods.pop(key, None)
        self._slices.pop(key, None)
