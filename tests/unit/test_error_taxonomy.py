"""The error taxonomy: which failures are API trouble, which the spec's fault, which bugs; what each
one logs and counts; the time limit of a reconcile."""

from __future__ import annotations

import asyncio
import logging

import pytest
import urllib3.exceptions

from model_registry_operator.kube import ApiError
from model_registry_operator.reconcile.claims import ClaimRace
from model_registry_operator.reconcile.errors import (
    BUG,
    FAILURES,
    INVALID,
    TRANSIENT,
    ConfigurationError,
    FailureCounter,
    HandlerTimeout,
    category,
    classify,
    record_failure,
    time_limit,
)


@pytest.mark.parametrize(
    "exc",
    [
        ApiError(500, "InternalError", "etcd leader changed"),
        ApiError(502, "BadGateway", ""),
        ApiError(503, "ServiceUnavailable", "etcd is down"),
        ApiError(504, "GatewayTimeout", ""),
        ApiError(429, "TooManyRequests", "storage is (re)initializing"),
        ApiError(409, "Conflict", "the object has been modified"),
        ApiError(404, "NotFound", "deleted meanwhile"),
        ConnectionRefusedError("connection refused"),
        urllib3.exceptions.ProtocolError("connection aborted"),
        TimeoutError("read timed out"),
        ClaimRace("Group g kept changing while it was being applied"),
    ],
)
def test_api_trouble_is_transient(exc: BaseException) -> None:
    assert category(exc) == TRANSIENT
    failure = classify(exc)
    assert failure.transient
    assert "Traceback" not in failure.details


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (ConfigurationError("Secret 'db' not found in namespace ns"), "Secret 'db' not found in namespace ns"),
        (ApiError(422, "Invalid", "spec.port: Invalid value"), "the API server rejected a generated object"),
        (ApiError(400, "BadRequest", "cannot parse"), "the API server rejected a generated object"),
    ],
)
def test_invalid_input_is_the_specs_fault_with_no_traceback(exc: BaseException, message: str) -> None:
    assert category(exc) == INVALID
    failure = classify(exc)
    assert failure.category == INVALID
    assert not failure.transient
    assert failure.message.startswith(message)
    assert "Traceback" not in failure.details


@pytest.mark.parametrize(
    "exc",
    [
        KeyError("spec"),
        RuntimeError("boom"),
        TypeError("unsupported operand"),
        HandlerTimeout("the reconcile of ns/a took longer than 1 s (RECONCILE_TIMEOUT_SECONDS)"),
    ],
)
def test_anything_else_is_a_bug_with_its_traceback(exc: BaseException) -> None:
    try:
        raise exc
    except BaseException as raised:  # noqa: BLE001 - to give it a traceback
        failure = classify(raised)
    assert category(exc) == BUG
    assert failure.category == BUG
    assert failure.details.startswith("Traceback (most recent call last)")
    assert failure.message.startswith("unexpected error (the operator log has the details): ")


def test_failures_are_counted_by_resource_and_category(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="model_registry_operator")
    before = FAILURES.snapshot()
    backoff = None
    for exc in (RuntimeError("boom"), RuntimeError("boom"), ApiError(503, "ServiceUnavailable", "")):
        try:
            raise exc
        except Exception as raised:  # noqa: BLE001 - to give it a traceback
            backoff, _delay, _failure = record_failure(backoff, None, raised, "ns/a", "Counted")
    after = FAILURES.snapshot()
    assert after.get(("Counted", BUG), 0) - before.get(("Counted", BUG), 0) == 2
    assert after.get(("Counted", TRANSIENT), 0) - before.get(("Counted", TRANSIENT), 0) == 1
    assert backoff is not None
    assert backoff.attempts == 3
    errors_logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors_logged) == 1  # the bug's traceback, once
    assert "Traceback (most recent call last)" in errors_logged[0].getMessage()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # the API trouble: one line
    assert "Traceback" not in warnings[0].getMessage()

    counter = FailureCounter()
    counter.add("ModelRegistry", BUG)
    assert counter.get("ModelRegistry", BUG) == 1
    assert counter.get("ModelRegistry", TRANSIENT) == 0


def test_a_new_generation_starts_the_backoff_over() -> None:
    body = {"metadata": {"uid": "u", "generation": 1}}
    backoff, first, _ = record_failure(None, body, RuntimeError("x"), "ns/a", "Counted")
    backoff, second, _ = record_failure(backoff, body, RuntimeError("x"), "ns/a", "Counted")
    assert second == 2 * first
    changed = {"metadata": {"uid": "u", "generation": 2}}
    backoff, third, _ = record_failure(backoff, changed, RuntimeError("x"), "ns/a", "Counted")
    assert third == first
    assert backoff.generation == 2


async def test_a_reconcile_past_its_time_limit_is_a_bug_showing_where_it_was_stuck() -> None:
    async def stuck_in_the_database_probe() -> None:
        await asyncio.sleep(10)

    with pytest.raises(HandlerTimeout, match=r"the reconcile of ns/a took longer than 0.05 s") as info:
        async with time_limit(0.05, "the reconcile of ns/a"):
            await stuck_in_the_database_probe()
    failure = classify(info.value)
    assert failure.category == BUG
    assert "stuck_in_the_database_probe" in failure.details  # the traceback of where it hung
    assert "RECONCILE_TIMEOUT_SECONDS" in failure.message


async def test_a_timeout_of_the_code_inside_stays_api_trouble() -> None:
    with pytest.raises(TimeoutError) as info:
        async with time_limit(5, "the reconcile of ns/a"):
            raise TimeoutError("read timed out")
    assert not isinstance(info.value, HandlerTimeout)
    assert classify(info.value).transient
