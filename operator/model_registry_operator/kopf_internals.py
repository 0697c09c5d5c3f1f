"""Every use of kopf beyond its public API, in this one module; checked against kopf 1.45.2.

kopf is pinned (``kopf==1.45.2`` in pyproject.toml) because of what is here: an upgrade must
re-check each item below against the new version (``tests/unit/test_kopf_internals.py`` keeps
the rest of the package from importing ``kopf._``; ``tests/integration/test_watch_guard.py``
runs the wrapped watch against the real API server, so a kopf that moved it fails there).

1. **A watch of an API that goes away** (:func:`tolerate_deleted_apis`). kopf treats an error in a
   watch stream as fatal for the whole operator. When a CRD is deleted (someone uninstalls Istio,
   Authorino or the OpenShift Route API), kopf rescans discovery on the CRD's ``DELETED`` event;
   the API server's discovery can still list the resource for a moment, so kopf keeps its
   watcher, the watcher reconnects into ``404 Not Found`` and the operator stops. No later CRD
   event comes to make kopf rescan, so a longer reconnect back-off does not help, and kopf has no
   setting or hook for it. The wrapper around ``kopf._cogs.clients.watching.continuous_watch``
   ends the stream quietly on ``kopf._cogs.clients.errors.APINotFoundError`` and re-opens it
   (list, then watch) after a pause: the watcher idles until kopf drops it on its next rescan of
   that group, or resumes by itself when the API is served again. The same wrapper reports
   each watch's ``kopf._cogs.clients.watching.Bookmark.LISTED`` (end of its initial listing) to
   the readiness probe.
2. **The diff base kept only where a handler needs it** (:class:`DiffBaseStorage`). The class we
   extend is public (``kopf.AnnotationsDiffBaseStorage``, set through
   ``settings.persistence.diffbase_storage``); what is not documented, and what this relies on,
   is that kopf calls ``build`` on every event of every watched kind (a deep copy of the body)
   and reads an empty essence from ``build`` and ``fetch`` as "nothing changed".
3. **kopf's internal logger names** (:data:`WATCH_LOGGER`, :data:`OBSERVATION_LOGGER`) and the
   wording of its retry message ("will retry", from ``kopf._cogs.clients.api``), which
   :class:`StorageInitializing` lowers to INFO: the logger names are kopf's module paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from typing import Any, cast

import kopf
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients import watching as kopf_watching

log = logging.getLogger(__name__)

KOPF_VERSION = "1.45.2"
"""The kopf version everything here was checked against."""

WATCH_LOGGER = "kopf._cogs.clients.watching"
"""The logger of kopf's watch streams (their LIST and WATCH requests and retries)."""
OBSERVATION_LOGGER = "kopf._core.reactor.observation"
"""The logger that reports each resource kopf cannot watch (an optional API absent here)."""

# -- 1. watches of APIs that go away ------------------------------------------------------

# Pause before re-listing an API that answered 404: one request per gone resource this often.
GONE_RETRY_SECONDS = 10.0

_ORIGINAL_ATTR = "_model_registry_original"


def tolerate_deleted_apis(
    retry_seconds: float = GONE_RETRY_SECONDS, on_listed: Callable[[str], None] | None = None
) -> None:
    """Install the wrapper around kopf's ``continuous_watch`` (idempotent).

    ``on_listed`` is called with ``plural.group`` each time a watch has listed what exists (kopf's
    ``Bookmark.LISTED``, before it streams changes): the readiness probe's "caches synced"."""
    current = kopf_watching.continuous_watch
    original: Callable[..., AsyncIterator[Any]] = getattr(current, _ORIGINAL_ATTR, current)
    gone: set[str] = set()  # resources whose last (re)connection answered 404, for the log

    async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
        resource = kwargs["resource"]
        where = f"in {kwargs['namespace']!r}" if kwargs.get("namespace") else "cluster-wide"
        what = f"{resource} {where}"
        try:
            async for item in original(**kwargs):
                if on_listed is not None and item is kopf_watching.Bookmark.LISTED:
                    on_listed(f"{resource.plural}.{resource.group}")
                if what in gone:
                    gone.discard(what)
                    log.info("The API of %s is served again; watching it", what)
                yield item
        except kopf_errors.APINotFoundError:
            if what not in gone:
                gone.add(what)
                log.warning("The API of %s is gone (404); its watch waits until it is served again", what)
            # Until kopf stops this watcher, or the operator pauses (which ends the stream too).
            pause_waiter: asyncio.Future[Any] = kwargs["operator_pause_waiter"]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(pause_waiter), retry_seconds)

    setattr(continuous_watch, _ORIGINAL_ATTR, original)
    kopf_watching.continuous_watch = continuous_watch


def restore_kopf_watch() -> None:
    """Undo :func:`tolerate_deleted_apis` (tests)."""
    original = getattr(kopf_watching.continuous_watch, _ORIGINAL_ATTR, None)
    if original is not None:
        kopf_watching.continuous_watch = original


# -- 2. the diff base ---------------------------------------------------------------------


class DiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation diff base, kept only for the kinds whose handlers need one.

    kopf builds a diff base (a deep copy of the body) on every event of every watched kind and
    compares it with the one stored in an annotation. Only the kinds in ``tracked`` ("group/Kind")
    have create / update handlers; the registries (delete handler only: their generations are
    tracked by the reconciler) and the children (event handlers) need no diff, so nothing is
    copied, read or stored for them: their essence is always empty, so kopf sees no change
    (nothing to handle, nothing to log) but a deletion.
    """

    def __init__(self, *, tracked: Iterable[str], prefix: str, key: str) -> None:
        super().__init__(prefix=prefix, key=key)
        self.tracked: Collection[str] = frozenset(tracked)

    def _tracked(self, body: kopf.Body) -> bool:
        group = str(body.get("apiVersion", "")).rpartition("/")[0]
        return f"{group}/{body.get('kind')}" in self.tracked

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        if self._tracked(body):
            return super().build(body=body, extra_fields=extra_fields)
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return super().fetch(body=body) if self._tracked(body) else cast(kopf.BodyEssence, {})

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if self._tracked(body):
            super().store(body=body, patch=patch, essence=essence)


# -- 3. kopf's log ------------------------------------------------------------------------


class StorageInitializing(logging.Filter):
    """kopf logs every retried request at ERROR. A 429 "storage is (re)initializing" answers the
    first LIST of a CRD installed or updated a moment ago (ours, applied together with the
    operator; Istio installed while it runs) and is retried as the API server asks: INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        message = record.getMessage()
        if "will retry" not in message or "storage is (re)initializing" not in message:
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)
