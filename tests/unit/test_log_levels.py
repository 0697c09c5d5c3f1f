"""The level the operator gives kopf's retries of requests the API server asked to retry."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from model_registry_operator.kopf_internals import WATCH_LOGGER, StorageInitializing

RETRY_429 = (
    "Request attempt #1/9 failed; will retry: GET https://127.0.0.1:6443/apis/route.openshift.io/v1/routes"
    " -> APITooManyRequestsError('storage is (re)initializing', {'code': 429}, status=429)"
)
RETRY_500 = (
    "Request attempt #1/9 failed; will retry: GET https://127.0.0.1:6443/apis/route.openshift.io/v1/routes"
    " -> APIServerError('etcdserver: request timed out', {'code': 500}, status=500)"
)


@pytest.fixture
def watch_log() -> Iterator[logging.Logger]:
    logger = logging.getLogger(WATCH_LOGGER)
    level, guard = logger.level, StorageInitializing()
    logger.addFilter(guard)
    yield logger
    logger.removeFilter(guard)
    logger.setLevel(level)


def test_a_retried_429_storage_initializing_is_info(
    watch_log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    watch_log.setLevel(logging.INFO)
    watch_log.error(RETRY_429)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("INFO", RETRY_429)]


def test_it_is_dropped_when_info_is_not_logged(watch_log: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    watch_log.setLevel(logging.WARNING)
    watch_log.error(RETRY_429)
    assert caplog.records == []


def test_other_retried_errors_stay_errors(watch_log: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    watch_log.setLevel(logging.INFO)
    watch_log.error(RETRY_500)
    watch_log.error("Request attempt #9/9 failed; escalating: storage is (re)initializing")
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR"]
