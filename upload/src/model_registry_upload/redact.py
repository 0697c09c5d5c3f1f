"""Keep secrets out of log output.

Every secret value the upload program learns (passwords, tokens, secret keys, and derived
forms such as ``user:password`` and its base64) is registered here; a logging filter replaces
any occurrence in a record's formatted message with ``***`` before a handler sees it. The user
info of any URL in a message (``scheme://user:password@``) is masked too, registered or not.
"""

from __future__ import annotations

import base64
import logging
import re
import threading

_MASK = "***"
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#]*@")
_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value (and its trimmed form); short values are ignored."""
    if not value:
        return
    with _lock:
        for candidate in (value, value.strip()):
            if len(candidate) >= 3:
                _secrets.add(candidate)


def register_basic_auth(username: str | None, password: str | None) -> None:
    """Register a password plus the ``user:pass`` pair and its base64 form."""
    if not password:
        return
    register_secret(password)
    pair = f"{username or ''}:{password}"
    register_secret(pair)
    register_secret(base64.b64encode(pair.encode()).decode())


def strip_userinfo(text: str) -> str:
    """``text`` with the user info of every URL in it (``https://user:pass@host``) masked."""
    return _USERINFO.sub(rf"\1{_MASK}@", text)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and URL user info masked (longest first)."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return strip_userinfo(text)


def clear_secrets() -> None:
    """Forget every registered secret (tests)."""
    with _lock:
        _secrets.clear()


class RedactingFilter(logging.Filter):
    """Logging filter that masks registered secrets in the final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format must not hide the record
            message = str(record.msg)
        masked = redact(message)
        if masked != message or record.args:
            record.msg = masked
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_factory_installed = False


def install() -> None:
    """Mask secrets in every log record the process creates, whatever handler emits it.

    Wraps the logging record factory (once), so records from any logger, including
    third-party libraries and test capture handlers, are already redacted.
    """
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        _factory_installed = True
    previous = logging.getLogRecordFactory()
    flt = RedactingFilter()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        flt.filter(record)
        return record

    logging.setLogRecordFactory(factory)
