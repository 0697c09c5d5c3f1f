"""AdmissionReview requests in, AdmissionReview responses out, around :mod:`.admission`'s decisions.

Pure (the other registries are passed in), so the server that calls it runs on every replica,
leader or standby (:mod:`..handlers.webhooks`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api.validation import SpecProblem
from .admission import Registry, default_spec

REFUSED_CODE = 422
"""The code of a refusal: the request is well formed but its object is not acceptable."""


class BadReview(ValueError):
    """The AdmissionReview itself is malformed (not the object it carries)."""


@dataclass(frozen=True)
class Review:
    """The parts of an AdmissionReview request the decisions need."""

    uid: str
    operation: str
    new: Registry
    old: Registry | None
    spec: Any  # the new object's spec as sent (None when absent)
    has_spec: bool
    api_version: str

    @classmethod
    def of(cls, review: Mapping[str, Any]) -> Review:
        request = review.get("request")
        if not isinstance(request, Mapping) or not request.get("uid"):
            raise BadReview("not an AdmissionReview request (no request.uid)")
        obj = request.get("object")
        if not isinstance(obj, Mapping):
            raise BadReview("the admission request carries no object")
        namespace = str(request.get("namespace") or "")
        new = Registry.of(obj, namespace)
        old_obj = request.get("oldObject")
        old = Registry.of(old_obj, new.namespace) if isinstance(old_obj, Mapping) else None
        return cls(
            uid=str(request["uid"]),
            operation=str(request.get("operation") or ""),
            new=new,
            old=old,
            spec=obj.get("spec"),
            has_spec="spec" in obj,
            api_version=str(review.get("apiVersion") or "admission.k8s.io/v1"),
        )

    @property
    def unchanged(self) -> bool:
        """kopf's finalizer, a label, a deletion: always allowed, no other registry needed."""
        return self.new.deleting or (self.old is not None and self.old.spec == self.new.spec)


def response(
    review: Review, problems: list[SpecProblem] | None = None, patch: list[Any] | None = None
) -> dict[str, Any]:
    """The AdmissionReview response: refused with every problem (``field: message``), or allowed
    with ``patch`` (JSON Patch) applied."""
    payload: dict[str, Any] = {"uid": review.uid, "allowed": not problems}
    if problems:
        payload["status"] = {"message": "; ".join(str(p) for p in problems), "code": REFUSED_CODE}
    if patch:
        payload["patch"] = base64.b64encode(json.dumps(patch).encode()).decode("ascii")
        payload["patchType"] = "JSONPatch"
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": payload}


def defaults_patch(review: Review) -> list[Any]:
    """The JSON Patch that writes :func:`.admission.default_spec` into the object (empty: nothing)."""
    if review.spec is not None and not isinstance(review.spec, Mapping):
        return []  # not an object: the CRD's schema refuses it
    defaulted = default_spec(review.spec)
    if review.has_spec and defaulted == review.spec:
        return []
    return [{"op": "replace" if review.has_spec else "add", "path": "/spec", "value": defaulted}]
