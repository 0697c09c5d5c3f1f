"""What a failed reconcile was, what the user is told, what the log gets, and when to try again.

The taxonomy, one :func:`category` for both reconcilers:

- ``INVALID``: a problem of the spec or of what it references (:class:`ConfigurationError`, a
  value no template can hold, a 400 / 422 of the API server): a condition naming the field, no
  retry until the spec or a referenced object changes (or the slow resync comes round);
- ``TRANSIENT``: API trouble (404 / 409 of a read-modify race, 429, 5xx, a connection or read
  timeout): one log line, retried with backoff;
- ``FORBIDDEN``: the API server refused the operator a request (403): its ClusterRole lacks the
  permission (or a quota, a terminating namespace): a condition with reason ``Forbidden`` naming
  the verb and resource, one log line, retried with backoff (a fixed role takes at the retry);
- ``BUG``: anything else, a bug or an input nobody foresaw, a reconcile that ran past its time
  limit (:class:`HandlerTimeout`) included: its traceback is logged once (and again only when the
  error changes), the condition says ``ReconcileError``, retried with backoff.

Every failure is counted in :data:`FAILURES` by resource and category, and in the
``model_registry_operator_reconcile_errors_total`` metric.

Messages and tracebacks pass through :func:`redact` with the Secret values the reconcile read,
so a value quoted in an exception never reaches a condition or the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import urllib3.exceptions

from ..kube import ApiError
from ..names import FORBIDDEN as FORBIDDEN_REASON
from ..names import RECONCILE_ERROR
from ..observability.metrics import RECONCILE_ERRORS
from ..render.values import value_problems as value_problems
from .claims import ClaimRace

log = logging.getLogger(__name__)

# Retry delays after failed reconciles: BASE, 2 * BASE, ... up to CAP.
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 300.0
# API answers that say "try again": races, throttling, the server or a proxy in trouble.
TRANSIENT_STATUSES = frozenset({404, 409, 429, 500, 502, 503, 504})
# Condition messages are for people: a traceback's last line, not a page of it.
MAX_MESSAGE = 512
REDACTED = "<redacted>"
# Secret values shorter than this are not redacted: "a" or "1" would mangle every message, and
# a secret that short is no secret.
MIN_SECRET_LENGTH = 4


Category = Literal["transient", "invalid", "forbidden", "bug"]
TRANSIENT: Category = "transient"
INVALID: Category = "invalid"
FORBIDDEN: Category = "forbidden"
BUG: Category = "bug"
# The API server refused what the spec rendered: the spec's fault, not the operator's.
INVALID_STATUSES = frozenset({400, 422})


class ConfigurationError(Exception):
    """The spec or what it references cannot work; the message names the field."""


class HandlerTimeout(Exception):
    """A reconcile ran past its time limit (``RECONCILE_TIMEOUT_SECONDS``): something it waited
    for hangs. A bug-class failure: its traceback (where it was stuck) is logged."""


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as the user and the log see it."""

    category: Category
    message: str  # for the condition: redacted, one line, bounded
    signature: str  # equal for repeats of the same error (a changed error is logged again)
    details: str  # for the log: the redacted traceback, or the one line of a transient error

    @property
    def reason(self) -> str:
        """The conditions' reason: ``Forbidden`` for a refused request, else ``ReconcileError``."""
        return FORBIDDEN_REASON if self.category == FORBIDDEN else RECONCILE_ERROR

    @property
    def transient(self) -> bool:
        """API trouble: one log line, no traceback."""
        return self.category == TRANSIENT


@dataclass
class FailureCounter:
    """Failed attempts since the operator started, by (resource, category); thread-safe reads."""

    counts: Counter[tuple[str, Category]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, resource: str, category: Category) -> None:
        with self._lock:
            self.counts[(resource, category)] += 1

    def get(self, resource: str, category: Category) -> int:
        with self._lock:
            return self.counts[(resource, category)]

    def snapshot(self) -> dict[tuple[str, Category], int]:
        with self._lock:
            return dict(self.counts)


# The operator's failure counts (one process, one counter; a metrics endpoint reads it).
FAILURES = FailureCounter()


# The userinfo of a URL (``scheme://user:password@host``): credentials, whatever they are.
_USERINFO = re.compile(r"(?<=://)[^/?#@\s]+@")


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value and URL userinfo replaced (longest first: one may contain another)."""
    for value in sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return _USERINFO.sub(REDACTED + "@", text)


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def is_transient(exc: BaseException) -> bool:
    """API trouble that a later attempt may not meet."""
    if isinstance(exc, ApiError):
        return exc.status in TRANSIENT_STATUSES
    return isinstance(
        exc, (ClaimRace, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, asyncio.TimeoutError)
    )


def is_invalid(exc: BaseException) -> bool:
    """The spec (or what it references, or what it rendered) is at fault: a condition, no retry."""
    if isinstance(exc, ApiError):
        return exc.status in INVALID_STATUSES
    return isinstance(exc, ConfigurationError)


def is_forbidden(exc: BaseException) -> bool:
    return isinstance(exc, ApiError) and exc.status == 403


# The RBAC authorizer's words: `User "u" cannot create resource "deployments" in API group "apps"
# in the namespace "ns"` (or `... at the cluster scope`), after `<resource> "<name>" is forbidden: `.
_DENIED = re.compile(
    r'cannot (?P<verb>\S+) resource "(?P<resource>[^"]+)" in API group "(?P<group>[^"]*)"'
    r'(?: in the namespace "(?P<namespace>[^"]+)"| at the cluster scope)?'
)


# RBAC's escalation check refusing a Role or binding, followed by the permissions not held.
_ESCALATION = "is attempting to grant RBAC permissions not currently held"


def forbidden_message(exc: ApiError) -> str:
    """The condition's message for a 403: the permission the operator lacks, when RBAC denied it."""
    denied = _DENIED.search(exc.message)
    if denied is None and _ESCALATION in exc.message:  # a Role or binding granting more than it holds
        # What is not held comes last in the API server's message: first here, before the bound cuts it.
        what, _, not_held = exc.message.partition(_ESCALATION)
        return (
            f"the operator may not grant permissions it does not hold itself: {not_held.lstrip(': ')}; "
            f"its ClusterRole lacks them (config/rbac/role.yaml; docs/operations.md, RBAC): {what.strip()}"
        )
    if denied is None:  # a quota, a terminating namespace: the API server's words say it
        return f"the Kubernetes API refused the operator a request (403 Forbidden): {exc.message}"
    resource = denied["resource"] + (f".{denied['group']}" if denied["group"] else "")
    where = f"in namespace {denied['namespace']}" if denied["namespace"] else "cluster-wide"
    return (
        f"the operator may not {denied['verb']} {resource} {where}: its ClusterRole lacks the permission "
        f"(config/rbac/role.yaml; docs/operations.md, RBAC): {exc.message}"
    )


def category(exc: BaseException) -> Category:
    if is_invalid(exc):
        return INVALID
    if is_forbidden(exc):
        return FORBIDDEN
    return TRANSIENT if is_transient(exc) else BUG


def invalid_message(exc: BaseException) -> str:
    """The condition's message for an ``INVALID`` failure."""
    if isinstance(exc, ApiError):
        return f"the API server rejected a generated object: {exc.message}"
    return str(exc)


@contextlib.asynccontextmanager
async def time_limit(seconds: float, what: str) -> AsyncIterator[None]:
    """Cancel what runs inside after ``seconds``, raising :class:`HandlerTimeout` (chained to the
    cancellation, so the traceback shows where it was stuck). A ``TimeoutError`` of the code inside
    (a read timeout) stays what it is: transient."""
    limit = asyncio.timeout(seconds)
    try:
        async with limit:
            yield
    except TimeoutError as exc:
        if not limit.expired():
            raise
        raise HandlerTimeout(f"{what} took longer than {seconds:g} s (RECONCILE_TIMEOUT_SECONDS)") from exc


def classify(exc: BaseException, secrets: Iterable[str] = ()) -> Failure:
    secrets = list(secrets)
    if is_invalid(exc):
        message = one_line(redact(invalid_message(exc), secrets))
        return Failure(INVALID, message, message, message)
    if isinstance(exc, ApiError) and is_forbidden(exc):
        message = one_line(redact(forbidden_message(exc), secrets))
        return Failure(FORBIDDEN, message, message, message)
    if is_transient(exc):
        if isinstance(exc, ApiError):
            summary = f"the Kubernetes API answered {exc.status} {exc.reason}: {exc.message}"
        elif isinstance(exc, ClaimRace):
            summary = str(exc)
        else:
            summary = f"the Kubernetes API could not be reached: {type(exc).__name__}: {exc}"
        message = one_line(redact(summary, secrets))
        return Failure(TRANSIENT, message, message, message)
    text = redact("".join(traceback.format_exception(exc)), secrets)
    summary = one_line(redact(f"{type(exc).__name__}: {exc}", secrets))
    message = f"unexpected error (the operator log has the details): {summary}"
    return Failure(BUG, one_line(message), f"{type(exc).__qualname__}: {summary}", text)


def backoff_delay(attempt: int) -> float:
    """Delay before retry number ``attempt`` (1, 2, ...): doubling from BASE, capped."""
    return float(min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, min(attempt - 1, 16))))


@dataclass
class Backoff:
    """The failures of one object since its last success or spec change."""

    uid: str
    generation: int
    attempts: int = 0
    signature: str = ""

    def failed(self, failure: Failure) -> tuple[float, bool]:
        """Record one more failure: (the delay before the next attempt, whether to log it)."""
        self.attempts += 1
        new = failure.signature != self.signature
        self.signature = failure.signature
        return backoff_delay(self.attempts), new


def record_failure(
    backoff: Backoff | None,
    body: dict[str, Any] | None,
    exc: BaseException,
    what: str,
    resource: str,
    secrets: Iterable[str] = (),
) -> tuple[Backoff, float, Failure]:
    """Count a failure of ``what`` (e.g. "upload ns/name") in :data:`FAILURES`, log it (a bug's
    traceback once, not at every retry); the backoff to keep and the delay before the retry.
    A new uid or generation starts the backoff over."""
    meta = (body or {}).get("metadata") or {}
    uid, generation = str(meta.get("uid", "")), int(meta.get("generation") or 0)
    if backoff is None or (body is not None and (backoff.uid, backoff.generation) != (uid, generation)):
        backoff = Backoff(uid, generation)
    failure = classify(exc, secrets)
    FAILURES.add(resource, failure.category)
    RECONCILE_ERRORS.labels(resource, failure.category).inc()
    delay, new = backoff.failed(failure)
    where = f"{what}: reconcile failed (attempt %d); retrying in %.0f s"
    if not new:
        log.debug(where + ": %s", backoff.attempts, delay, failure.message)
    elif failure.category != BUG:
        log.warning(where + ": %s", backoff.attempts, delay, failure.details)
    else:
        log.error(
            where + ", with backoff (repeats are logged at debug level)\n%s", backoff.attempts, delay, failure.details
        )
    return backoff, delay, failure
