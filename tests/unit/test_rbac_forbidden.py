"""A request the API server refuses the operator (403) is reported as what it is: reason
``Forbidden`` naming the verb and resource its ClusterRole lacks, one log line, no traceback."""

from __future__ import annotations

import logging

import pytest

from model_registry_operator.kube import ApiError
from model_registry_operator.names import AVAILABLE, DEGRADED, FORBIDDEN, RECONCILE_ERROR
from model_registry_operator.reconcile.errors import FORBIDDEN as FORBIDDEN_CATEGORY
from model_registry_operator.reconcile.errors import category, classify, record_failure
from model_registry_operator.status.modelregistry import Observation, registry_conditions

# What the API server answers, word for word (the RBAC authorizer's message).
NAMESPACED = (
    'deployments.apps "reg" is forbidden: User "system:serviceaccount:op:manager" cannot patch resource '
    '"deployments" in API group "apps" in the namespace "ns1"'
)
CLUSTER = (
    'clusterrolebindings.rbac.authorization.k8s.io is forbidden: User "system:serviceaccount:op:manager" '
    'cannot list resource "clusterrolebindings" in API group "rbac.authorization.k8s.io" at the cluster scope'
)
CORE = (
    'secrets "reg-db" is forbidden: User "system:serviceaccount:op:manager" cannot get resource "secrets" '
    'in API group "" in the namespace "ns1"'
)
ESCALATION = (
    'clusterrolebindings.rbac.authorization.k8s.io "reg-auth-delegator" is forbidden: user '
    '"system:serviceaccount:op:manager" (groups=["system:serviceaccounts" "system:authenticated"]) is attempting '
    'to grant RBAC permissions not currently held:\n{APIGroups:["authentication.k8s.io"], Resources:["tokenreviews"], '
    'Verbs:["create"]}'
)
QUOTA = 'pods "x" is forbidden: exceeded quota: compute, requested: cpu=1, used: cpu=2, limited: cpu=2'


@pytest.mark.parametrize(
    ("message", "named"),
    [
        (NAMESPACED, "the operator may not patch deployments.apps in namespace ns1: its ClusterRole lacks"),
        (CLUSTER, "may not list clusterrolebindings.rbac.authorization.k8s.io cluster-wide"),
        (CORE, "may not get secrets in namespace ns1"),
        (ESCALATION, 'may not grant permissions it does not hold itself: {APIGroups:["authentication.k8s.io"], '),
        (QUOTA, "the Kubernetes API refused the operator a request (403 Forbidden): pods"),
    ],
)
def test_a_403_is_forbidden_naming_the_permission(message: str, named: str) -> None:
    exc = ApiError(403, "Forbidden", message)
    failure = classify(exc)
    assert category(exc) == FORBIDDEN_CATEGORY
    assert failure.reason == FORBIDDEN
    assert named in failure.message
    assert "Traceback" not in failure.details
    assert not failure.transient


def test_other_failures_keep_their_reason() -> None:
    assert classify(RuntimeError("boom")).reason == RECONCILE_ERROR
    assert classify(ApiError(503, "ServiceUnavailable", "")).reason == RECONCILE_ERROR


def test_the_registry_conditions_say_forbidden() -> None:
    message = classify(ApiError(403, "Forbidden", NAMESPACED)).message
    observation = Observation(1, reconcile_error=message, reconcile_reason=FORBIDDEN)
    conds = {c.type: c for c in registry_conditions(observation, None)}
    assert (conds[AVAILABLE].status, conds[AVAILABLE].reason) == ("False", FORBIDDEN)
    assert (conds[DEGRADED].status, conds[DEGRADED].reason) == ("True", FORBIDDEN)
    assert "patch deployments.apps" in conds[AVAILABLE].message


def test_logged_once_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="model_registry_operator")
    exc = ApiError(403, "Forbidden", NAMESPACED)
    backoff, _delay, _ = record_failure(None, None, exc, "ns1/reg", "modelregistries")
    record_failure(backoff, None, exc, "ns1/reg", "modelregistries")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "may not patch deployments.apps" in warnings[0].getMessage()
