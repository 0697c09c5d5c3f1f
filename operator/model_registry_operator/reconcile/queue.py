"""The work queue both reconcilers run on: one reconcile of an object at a time, bursts of triggers
collapsed into one run, failed runs retried with backoff, and one record of state per object.

Every trigger (a watch event, the periodic resync, a retry) calls :meth:`WorkQueue.schedule`. A
scheduled run waits out its debounce (or its retry delay), then takes the object's lock and calls
the reconciler's ``worker`` with what was asked for meanwhile (:class:`Wanted`, merged). The
worker returns the delay before a retry, or ``None``; one that raises is counted and logged
through :func:`errors.record_failure` and retried with backoff too. A change that may fix a
failing object (``urgent``: its spec, a Secret it reads) cuts a waiting retry short.

The reconciler's own per-object state (what was applied, the status last written, caches) is one
record (``S``) kept here beside the lock, the pending run and the backoff: :meth:`forget` drops
all of it in one call when the object goes.

Written by hand: kopf serialises handlers per object, but its queue holds a task and the body of
every object that had an event (the operator's peak memory at a thousand registries) and has no
debounce or merging of triggers from other objects' events; ``asyncio.Queue`` and aiojobs have
neither per-key serialisation nor merging.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..observability.metrics import QUEUE_DEPTH, RECONCILE_DURATION, RECONCILES
from .errors import Backoff, Failure, record_failure

Key = tuple[str, str]  # namespace, name
S = TypeVar("S")


@dataclass(frozen=True)
class Wanted:
    """What a scheduled run is to do; two requests merge into one that does both."""

    full: bool = True  # the whole reconcile; False: only a fresh status
    relist: bool = False  # re-read the observed children from the API server

    def merge(self, other: Wanted) -> Wanted:
        return Wanted(self.full or other.full, self.relist or other.relist)


@dataclass(eq=False, slots=True)
class _Slot(Generic[S]):
    state: S
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: Wanted | None = None  # a run is scheduled and has not started yet
    wake: asyncio.Event | None = None  # set: the scheduled run stops waiting
    backoff: Backoff | None = None  # failures since the last success or spec change
    forgotten: bool = False  # dropped while a run held the lock: removed when it ends


Worker = Callable[[Key, Wanted], Awaitable[float | None]]


class WorkQueue(Generic[S]):
    """Serialise, debounce and retry the reconciles of one resource; hold each object's state."""

    def __init__(
        self,
        worker: Worker,
        new_state: Callable[[], S],
        *,
        resource: str,
        describe: Callable[[Key], str] = lambda key: f"{key[0]}/{key[1]}",
        debounce: float,
        status_debounce: float | None = None,
        close: Callable[[S], None] | None = None,
    ) -> None:
        self.worker = worker
        self.new_state = new_state
        self.resource = resource  # for the failure counter ("ModelRegistry", ...)
        self.describe = describe  # an object, for the log
        self.debounce = debounce
        self.status_debounce = debounce if status_debounce is None else status_debounce
        self.close = close or (lambda state: None)  # releases what a dropped state holds (timers)
        # Runs start in this context when set (kopf.event() only works inside a kopf handler's).
        self.context: contextvars.Context | None = None
        self._slots: dict[Key, _Slot[S]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        QUEUE_DEPTH.labels(resource).set_function(self.depth)

    # -- the records ---------------------------------------------------------------------
    def _slot(self, key: Key) -> _Slot[S]:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(self.new_state())
        return slot

    def state(self, key: Key) -> S:
        """The object's state record, created empty the first time."""
        return self._slot(key).state

    def peek(self, key: Key) -> S | None:
        """The object's state record, if it has one."""
        slot = self._slots.get(key)
        return None if slot is None else slot.state

    def items(self) -> Iterator[tuple[Key, S]]:
        return ((key, slot.state) for key, slot in list(self._slots.items()))

    def __len__(self) -> int:
        return len(self._slots)

    def forget(self, key: Key) -> None:
        """Drop everything kept for ``key``: its state, a scheduled run, its backoff."""
        slot = self._slots.get(key)
        if slot is None:
            return
        self.close(slot.state)
        if slot.wake is not None:
            slot.wake.set()  # the scheduled run ends at once (and finds nothing pending)
        if slot.lock.locked():
            # A run under way keeps the lock (no second run may start beside it); it finds a
            # fresh state, and the slot goes when it ends.
            slot.state, slot.pending, slot.backoff, slot.forgotten = self.new_state(), None, None, True
        else:
            del self._slots[key]

    # -- scheduling ----------------------------------------------------------------------
    def depth(self) -> int:
        """Runs scheduled and not started yet (the work queue depth metric)."""
        return sum(1 for slot in list(self._slots.values()) if slot.pending is not None)

    def queued(self, key: Key) -> bool:
        slot = self._slots.get(key)
        return slot is not None and slot.pending is not None

    def schedule(
        self, key: Key, wanted: Wanted | None = None, *, delay: float | None = None, urgent: bool = False
    ) -> None:
        """Run the worker for ``key`` soon; triggers until it starts merge into that one run.

        ``delay`` overrides the debounce (0: nothing to wait for, a retry: its backoff). ``urgent``
        cuts short the wait of a run already scheduled (a retry waiting out its backoff).
        """
        wanted = wanted or Wanted()
        slot = self._slot(key)
        slot.forgotten = False
        if slot.pending is not None:
            slot.pending = slot.pending.merge(wanted)
            if urgent and slot.wake is not None:
                slot.wake.set()
            return
        slot.pending = wanted
        if delay is None:
            delay = self.debounce if wanted.full else self.status_debounce
        context = self.context.copy() if self.context is not None else None
        task = asyncio.get_running_loop().create_task(self._run(key, slot, delay), context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: Key, slot: _Slot[S], delay: float) -> None:
        if delay > 0:
            wake = slot.wake = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
            if slot.wake is wake:
                slot.wake = None
        if self._slots.get(key) is not slot:
            return  # forgotten meanwhile
        wanted, retry_in = Wanted(), None
        try:
            async with self.serialised(key):
                if slot.pending is None:
                    return  # forgotten meanwhile
                wanted, slot.pending = slot.pending, None
                retry_in = await self.worker(key, wanted)
        except Exception as exc:  # the worker reports its own failures; this is one it could not
            retry_in, _failure = self.failed(key, None, exc)
        if retry_in is not None and self._slots.get(key) is slot and not slot.forgotten:
            self.schedule(key, wanted, delay=retry_in)

    @contextlib.asynccontextmanager
    async def serialised(self, key: Key) -> AsyncIterator[None]:
        """Hold the object's lock: no other run of it meanwhile (for runs outside the queue too).
        Every reconcile runs under it: it is counted and timed here."""
        slot = self._slot(key)
        try:
            async with slot.lock:
                RECONCILES.labels(self.resource).inc()
                with RECONCILE_DURATION.labels(self.resource).time():
                    yield
        finally:
            if slot.forgotten and slot.pending is None and not slot.lock.locked() and self._slots.get(key) is slot:
                del self._slots[key]

    # -- failures ------------------------------------------------------------------------
    def failed(
        self, key: Key, body: dict[str, Any] | None, exc: BaseException, secrets: set[str] | None = None
    ) -> tuple[float, Failure]:
        """Count a failure and log it (a bug's traceback once, not at every retry); the delay
        before the retry, growing with each failure since the last success or spec change."""
        slot = self._slot(key)
        slot.backoff, delay, failure = record_failure(
            slot.backoff, body, exc, self.describe(key), self.resource, secrets or ()
        )
        return delay, failure

    def succeeded(self, key: Key) -> None:
        """The next failure starts the backoff over."""
        slot = self._slots.get(key)
        if slot is not None:
            slot.backoff = None

    def failing(self, key: Key) -> Backoff | None:
        """The object's failures since its last success, if its last run failed."""
        slot = self._slots.get(key)
        return None if slot is None else slot.backoff

    async def stop(self) -> None:
        """Cancel every scheduled run (tests, shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
