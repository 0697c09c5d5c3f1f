"""Keep kopf's watch of an API alive when that API goes away under it.

kopf treats an error in a watch stream as fatal for the whole operator. When a CRD is deleted
(someone uninstalls Istio, Authorino or the OpenShift Route API), kopf rescans discovery on the
CRD's ``DELETED`` event; the API server's discovery can still list the resource for a moment, so
kopf keeps its watcher, the watcher reconnects into ``404 Not Found`` and the operator stops. No
later CRD event comes to make kopf rescan, so a longer reconnect back-off does not help.

:func:`tolerate_deleted_apis` wraps kopf's watch stream: a 404 ends the stream quietly and it is
re-opened (list, then watch) after a pause. The watcher thus idles until kopf drops it on its
next rescan of that group, or resumes by itself when the API is served again. kopf is pinned in
``pyproject.toml``; ``tests/integration/test_watch_guard.py`` checks the wrapped function against
the real API server, so a kopf upgrade that moves it fails there, not in a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients import watching as kopf_watching

log = logging.getLogger(__name__)

# Pause before re-listing an API that answered 404: one request per gone resource this often.
GONE_RETRY_SECONDS = 10.0

_ORIGINAL_ATTR = "_model_registry_original"


def tolerate_deleted_apis(retry_seconds: float = GONE_RETRY_SECONDS) -> None:
    """Install the wrapper around kopf's ``continuous_watch`` (idempotent)."""
    current = kopf_watching.continuous_watch
    original: Callable[..., AsyncIterator[Any]] = getattr(current, _ORIGINAL_ATTR, current)
    gone: set[str] = set()  # resources whose last (re)connection answered 404, for the log

    async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
        resource = kwargs["resource"]
        where = f"in {kwargs['namespace']!r}" if kwargs.get("namespace") else "cluster-wide"
        what = f"{resource} {where}"
        try:
            async for item in original(**kwargs):
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
