"""Shared ``requests`` plumbing: retries for transient errors, never for TLS failures."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError, SSLError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry


class _Retry(Retry):
    """A TLS verification failure will not fix itself: fail at once instead of backing off."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if isinstance(error, SSLError):
            raise MaxRetryError(_pool, url or "", error)  # type: ignore[arg-type]  # urllib3 passes None too
        return super().increment(method, url, response, error, _pool, _stacktrace)


def session_with_retries(
    *, methods: frozenset[str], statuses: tuple[int, ...] = (502, 503, 504), total: int = 3, pool: int = 10
) -> requests.Session:
    session = requests.Session()
    retry = _Retry(
        total=total,
        connect=total,
        read=2,
        backoff_factor=0.3,
        status_forcelist=statuses,
        allowed_methods=methods,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def error_text(resp: requests.Response) -> str:
    """The ``message`` of a JSON error body (model registry, Kubernetes Status), else the body."""
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:300].strip() or resp.reason
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])[:300]
    return str(data)[:300]
