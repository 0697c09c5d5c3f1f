"""The error taxonomy of the reconcilers and the conditions it leads to (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3.exceptions

from model_registry_operator.api.validation import parse_spec
from model_registry_operator.kube import ApiError
from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES
from model_registry_operator.reconcile.claims import NameConflict, owner_of
from model_registry_operator.reconcile.errors import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    Backoff,
    backoff_delay,
    classify,
    redact,
)
from model_registry_operator.render.database import DatabaseSecrets
from model_registry_operator.render.defaults import apply_runtime_defaults
from model_registry_operator.render.engine import RenderError
from model_registry_operator.render.modelregistry import RegistryRef, RenderInputs, render_model_registry
from model_registry_operator.render.values import value_problems
from model_registry_operator.settings import OperatorSettings
from model_registry_operator.status.modelregistry import Observation, registry_conditions


def conditions(obs: Observation) -> dict[str, tuple[str, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in registry_conditions(obs, None)}


def test_backoff_doubles_from_5_seconds_to_a_5_minute_cap() -> None:
    delays = [backoff_delay(n) for n in range(1, 12)]
    assert delays[:4] == [5.0, 10.0, 20.0, 40.0]
    assert delays[-1] == BACKOFF_CAP_SECONDS == 300.0
    assert BACKOFF_BASE_SECONDS == 5.0
    assert backoff_delay(10_000) == 300.0  # no overflow after days of failures


def test_a_repeated_error_is_logged_once_and_a_new_one_again() -> None:
    backoff = Backoff("uid", 1)
    boom = classify(RuntimeError("boom"))
    assert backoff.failed(boom) == (5.0, True)
    assert backoff.failed(boom) == (10.0, False)
    assert backoff.failed(classify(RuntimeError("boom"))) == (20.0, False)
    assert backoff.failed(classify(ValueError("other"))) == (40.0, True)


def test_unknown_errors_carry_their_traceback_and_a_short_message() -> None:
    try:
        raise KeyError("spec")
    except KeyError as exc:
        failure = classify(exc)
    assert not failure.transient
    assert failure.message == "unexpected error (the operator log has the details): KeyError: 'spec'"
    assert failure.details.startswith("Traceback (most recent call last)")
    assert "raise KeyError" in failure.details


def test_api_trouble_is_transient_and_has_no_traceback() -> None:
    for exc in (
        ApiError(503, "ServiceUnavailable", "etcd is down"),
        ApiError(409, "Conflict", "the object has been modified"),
        ApiError(429, "TooManyRequests", "slow down"),
        urllib3.exceptions.MaxRetryError(None, "/api", "connection refused"),  # type: ignore[arg-type]
        TimeoutError("read timed out"),
    ):
        failure = classify(exc)
        assert failure.transient, exc
        assert "Traceback" not in failure.details
    assert classify(ApiError(503, "ServiceUnavailable", "etcd is down")).message == (
        "the Kubernetes API answered 503 ServiceUnavailable: etcd is down"
    )
    assert not classify(ApiError(403, "Forbidden", "no")).transient  # RBAC: a bug of the install


def test_secrets_never_reach_the_message_or_the_log() -> None:
    password = "s3cr3t-Passw0rd"  # noqa: S105 - a test value
    try:
        raise ValueError(f"cannot connect to postgres://mr:{password}@db/mr with {password}")
    except ValueError as exc:
        failure = classify(exc, {password, "x"})
    for text in (failure.message, failure.details, failure.signature):
        assert password not in text
        assert "<redacted>" in text
    assert redact("https://user:token@host/x and http://a@b", []) == "https://<redacted>@host/x and http://<redacted>@b"
    assert redact("x" * 3, ["xxx"]) == "xxx"  # too short to be a secret; would mangle everything


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"rest": {"image": "quay.io/x:🚀"}, "postgres": {"generateDeployment": True}}, "spec.rest.image"),
        (
            {"rest": {}, "postgres": {"generateDeployment": True, "image": "quay.io/pg:🚀"}},
            "spec.postgres.image",
        ),
    ],
)
def test_issue_example_emoji_image_renders_or_names_the_field(spec: dict[str, Any], field: str) -> None:
    """`rest.image: "quay.io/x:🚀"` (also the postgres image) raised a render error that became a
    traceback: whatever the schema lets through either renders or is blamed on its field."""
    parsed, problems = parse_spec(spec)
    if parsed is None:  # refused by the validation, naming the field
        assert any(p.field == field for p in problems), problems
        return
    effective = apply_runtime_defaults(parsed, OperatorSettings(), "reg")
    inputs = RenderInputs(DatabaseSecrets(password="pw"), generated_postgres_password="pw")  # noqa: S106
    try:
        render_model_registry(
            RegistryRef("reg", "ns", "uid", {}), effective, OperatorSettings(), PLAIN_KUBERNETES, inputs
        )
    except RenderError:
        blamed = value_problems(spec)
        assert [p.split(":", 1)[0] for p in blamed] == [field], blamed
        assert "cannot be written into a generated object" in blamed[0]


def test_value_problems_walks_lists_and_names_indexes() -> None:
    assert value_problems({"a": [{"b": "ok"}, {"c": 5}], "d": None}) == []
    for problem in value_problems({"a": [{"b": "ok"}, {"c": "x:🚀"}]}):
        assert problem.startswith("spec.a[1].c: ")


def test_a_reconcile_error_is_degraded_and_unavailable() -> None:
    conds = conditions(Observation(generation=2, reconcile_error="unexpected error: boom (retrying in 5 s)"))
    assert conds["Available"][:2] == ("False", "ReconcileError")
    assert conds["Degraded"][:2] == ("True", "ReconcileError")
    assert conds["Progressing"][:2] == ("False", "ReconcileError")
    assert conds["DatabaseAvailable"][:2] == ("Unknown", "ReconcileError")
    assert "boom" in conds["Available"][2]


def test_issue_example_cross_namespace_collision_is_a_name_conflict() -> None:
    conflict = NameConflict(("ClusterRoleBinding", None, "shared-auth-delegator"), ("tenant-a", "shared"), False)
    conds = conditions(Observation(generation=1, name_conflicts=[str(conflict)]))
    assert conds["Available"][:2] == ("False", "NameConflict")
    assert conds["Degraded"][:2] == ("True", "NameConflict")
    message = conds["Available"][2]
    assert "ClusterRoleBinding shared-auth-delegator" in message
    assert "ModelRegistry tenant-a/shared" in message


def test_a_conflict_with_an_object_of_no_registry_says_so() -> None:
    conflict = NameConflict(("Group", None, "admins-users"), None, False)
    assert "belongs to an object no ModelRegistry created" in str(conflict)
    route = NameConflict(("Route", "istio-system", "a-b-c-rest"), ("a", "b-c"), True)
    assert str(route).startswith(
        "Route istio-system/a-b-c-rest already exists and belongs to ModelRegistry a/b-c (being deleted)"
    )


def test_the_owner_is_read_from_both_labels() -> None:
    labels = {"modelregistry.opendatahub.io/registry": "shared", "modelregistry.opendatahub.io/namespace": "t-a"}
    assert owner_of({"metadata": {"labels": labels}}) == ("t-a", "shared")
    assert owner_of({"metadata": {"labels": {"modelregistry.opendatahub.io/registry": "shared"}}}) is None
    assert owner_of({"metadata": {}}) is None
