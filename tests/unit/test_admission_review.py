"""AdmissionReview requests in, responses out: what the API server gets from every replica."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from model_registry_operator.api.validation import SpecProblem
from model_registry_operator.webhooks.review import BadReview, Review, defaults_patch, response

PG = {"host": "db", "database": "mr", "username": "u"}


def request(obj: dict[str, Any] | None, old: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"uid": "u-1", "operation": "UPDATE" if old else "CREATE", "namespace": "ns", **extra}
    if obj is not None:
        payload["object"] = obj
    if old is not None:
        payload["oldObject"] = old
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": payload}


def registry(spec: Any = None, **meta: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "r", **meta}}
    if spec is not None:
        body["spec"] = spec
    return body


def test_a_refusal_carries_every_problem_with_its_field_and_the_uid() -> None:
    review = Review.of(request(registry({"rest": {}})))
    answer = response(review, [SpecProblem("metadata.name", "taken"), SpecProblem("spec.rest", "bad")])
    assert answer == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": "u-1",
            "allowed": False,
            "status": {"message": "metadata.name: taken; spec.rest: bad", "code": 422},
        },
    }


def test_the_registry_takes_the_request_namespace() -> None:
    """On CREATE the object may carry no namespace yet: the request's is where it goes."""
    review = Review.of(request(registry({"rest": {}})))
    assert (review.new.namespace, review.new.name) == ("ns", "r")


def test_the_defaults_come_as_a_json_patch_of_the_spec() -> None:
    review = Review.of(request(registry({"rest": {}, "mysql": {"host": "db"}, "postgres": {}})))
    answer = response(review, patch=defaults_patch(review))["response"]
    assert answer["allowed"] is True
    assert answer["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["patch"])) == [
        {"op": "replace", "path": "/spec", "value": {"rest": {"serviceRoute": "disabled"}, "mysql": {"host": "db"}}}
    ]


def test_no_patch_when_nothing_is_defaulted() -> None:
    review = Review.of(request(registry({"rest": {"serviceRoute": "enabled"}, "postgres": PG})))
    assert defaults_patch(review) == []
    assert "patch" not in response(review, patch=[])["response"]


def test_a_missing_spec_is_added_and_a_malformed_one_left_to_the_schema() -> None:
    assert defaults_patch(Review.of(request(registry())))[0]["op"] == "add"
    assert defaults_patch(Review.of(request(registry("not an object")))) == []


def test_an_update_of_metadata_only_or_a_deletion_is_unchanged() -> None:
    spec = {"rest": {}, "postgres": PG}
    assert Review.of(request(registry(spec, labels={"a": "b"}), old=registry(spec))).unchanged
    assert Review.of(request(registry(spec, deletionTimestamp="2026-01-01T00:00:00Z"))).unchanged
    assert not Review.of(request(registry({"rest": {}}), old=registry(spec))).unchanged


@pytest.mark.parametrize("review", [{}, {"request": {"uid": ""}}, request(None)])
def test_a_malformed_review_is_a_bad_request(review: dict[str, Any]) -> None:
    with pytest.raises(BadReview):
        Review.of(review)
