"""What a failed reconcile was, what the user is told, what the log gets, and when to try again.

The taxonomy (each reconciler maps its own exceptions onto it):

- a problem of the spec or of what it references (``ConfigurationError``, a value no template
  can hold, a 400 / 422 of the API server): a condition naming the field, no retry until the
  spec or a referenced object changes;
- API trouble (404 / 409 of a read-modify race, 429, 5xx, a connection or timeout error):
  transient, one log line, retried with backoff;
- anything else: a bug or an unforeseen input; its traceback is logged once (and again only
  when the error changes), the condition says ``ReconcileError``, retried with backoff.

Messages and tracebacks pass through :func:`redact` with the Secret values the reconcile read,
so a value quoted in an exception never reaches a condition or the log.
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import urllib3.exceptions

from ..kube import ApiError
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


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as the user and the log see it."""

    transient: bool  # API trouble: one log line, no traceback
    message: str  # for the condition: redacted, one line, bounded
    signature: str  # equal for repeats of the same error (a changed error is logged again)
    details: str  # for the log: the redacted traceback, or the one line of a transient error


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


def classify(exc: BaseException, secrets: Iterable[str] = ()) -> Failure:
    secrets = list(secrets)
    if is_transient(exc):
        if isinstance(exc, ApiError):
            summary = f"the Kubernetes API answered {exc.status} {exc.reason}: {exc.message}"
        elif isinstance(exc, ClaimRace):
            summary = str(exc)
        else:
            summary = f"the Kubernetes API could not be reached: {type(exc).__name__}: {exc}"
        message = one_line(redact(summary, secrets))
        return Failure(True, message, message, message)
    text = redact("".join(traceback.format_exception(exc)), secrets)
    summary = one_line(redact(f"{type(exc).__name__}: {exc}", secrets))
    message = f"unexpected error (the operator log has the details): {summary}"
    return Failure(False, one_line(message), f"{type(exc).__qualname__}: {summary}", text)


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


Key = tuple[str, str]


def record_failure(
    failures: dict[Key, Backoff],
    key: Key,
    body: dict[str, Any] | None,
    exc: BaseException,
    what: str,
    secrets: Iterable[str] = (),
) -> tuple[float, Failure]:
    """Count a failure of ``what`` (e.g. "upload ns/name"), log it (its traceback once, not at every
    retry); the delay before the retry. A new uid or generation starts the backoff over."""
    meta = (body or {}).get("metadata") or {}
    uid, generation = str(meta.get("uid", "")), int(meta.get("generation") or 0)
    backoff = failures.get(key)
    if backoff is None or (body is not None and (backoff.uid, backoff.generation) != (uid, generation)):
        backoff = failures[key] = Backoff(uid, generation)
    failure = classify(exc, secrets)
    delay, new = backoff.failed(failure)
    where = f"{what}: reconcile failed (attempt %d); retrying in %.0f s"
    if not new:
        log.debug(where + ": %s", backoff.attempts, delay, failure.message)
    elif failure.transient:
        log.warning(where + ": %s", backoff.attempts, delay, failure.details)
    else:
        log.error(
            where + ", with backoff (repeats are logged at debug level)\n%s", backoff.attempts, delay, failure.details
        )
    return delay, failure
