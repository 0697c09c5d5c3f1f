"""The work queue both reconcilers run on, on a real event loop: debounce, one run per object at a
time, retries with a growing and capped delay, urgent triggers, and state dropped in one call."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from model_registry_operator.reconcile import errors
from model_registry_operator.reconcile.queue import Key, Wanted, WorkQueue


@dataclass
class Record:
    seen: list[Wanted] = field(default_factory=list)


@dataclass
class Worker:
    """Records every run; sleeps ``busy`` seconds in each; fails while ``failing``."""

    busy: float = 0.0
    failing: bool = False
    runs: list[tuple[Key, Wanted, float]] = field(default_factory=list)
    active: dict[Key, int] = field(default_factory=dict)
    most_at_once: dict[Key, int] = field(default_factory=dict)
    retry_in: float | None = None

    async def __call__(self, key: Key, wanted: Wanted) -> float | None:
        self.runs.append((key, wanted, time.monotonic()))
        self.active[key] = self.active.get(key, 0) + 1
        self.most_at_once[key] = max(self.most_at_once.get(key, 0), self.active[key])
        try:
            await asyncio.sleep(self.busy)
            if self.failing:
                raise RuntimeError(f"boom in {key[1]}")
        finally:
            self.active[key] -= 1
        return self.retry_in


def queue_for(worker: Worker, debounce: float = 0.05) -> WorkQueue[Record]:
    return WorkQueue(worker, Record, resource="Test", debounce=debounce, status_debounce=debounce * 2)


async def until(condition: Callable[[], object], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_burst_of_triggers_is_one_run_doing_what_all_of_them_asked() -> None:
    worker = Worker()
    queue = queue_for(worker)
    key = ("ns", "a")
    for i in range(50):
        queue.schedule(key, Wanted(full=False, relist=i == 7))
    queue.schedule(key, Wanted(full=True))
    assert queue.queued(key)
    await until(lambda: worker.runs)
    await asyncio.sleep(0.2)
    assert [(k, w) for k, w, _ in worker.runs] == [(key, Wanted(full=True, relist=True))]
    assert not queue.queued(key)
    await queue.stop()


async def test_the_debounce_waits_and_a_status_refresh_waits_longer() -> None:
    worker = Worker()
    queue = queue_for(worker, debounce=0.2)
    start = time.monotonic()
    queue.schedule(("ns", "full"))
    queue.schedule(("ns", "status"), Wanted(full=False))
    queue.schedule(("ns", "now"), delay=0.0)
    await until(lambda: len(worker.runs) == 3)
    after = {k[1]: at - start for k, _, at in worker.runs}
    assert after["now"] < 0.1
    assert 0.2 <= after["full"] < 0.35
    assert 0.4 <= after["status"] < 0.6
    await queue.stop()


async def test_one_run_per_object_at_a_time_and_objects_in_parallel() -> None:
    worker = Worker(busy=0.2)
    queue = queue_for(worker, debounce=0.01)
    a, b = ("ns", "a"), ("ns", "b")
    queue.schedule(a)
    queue.schedule(b)
    await until(lambda: len(worker.runs) == 2)
    queue.schedule(a)  # during a's run: a second run, after the first
    await until(lambda: len(worker.runs) == 3)
    await until(lambda: not any(worker.active.values()))
    assert worker.most_at_once == {a: 1, b: 1}
    first_a, first_b, second_a = worker.runs
    assert [run[0] for run in worker.runs] == [a, b, a]
    assert first_b[2] - first_a[2] < 0.1  # two objects: at the same time
    assert second_a[2] - first_a[2] >= 0.2  # the same object: one after the other

    async def direct() -> None:  # a run outside the queue (kopf's handlers) waits its turn too
        async with queue.serialised(a):
            await worker(a, Wanted())

    queue.schedule(a, delay=0.0)
    await asyncio.sleep(0.05)
    await direct()
    assert worker.most_at_once[a] == 1
    await queue.stop()


async def test_failures_retry_with_a_doubling_delay_up_to_the_cap_and_log_one_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(errors, "BACKOFF_BASE_SECONDS", 0.1)
    monkeypatch.setattr(errors, "BACKOFF_CAP_SECONDS", 0.4)
    caplog.set_level(logging.DEBUG, logger="model_registry_operator")
    before = errors.FAILURES.get("Test", errors.BUG)
    worker = Worker(failing=True)
    queue = queue_for(worker, debounce=0.01)
    key = ("ns", "failing")
    queue.schedule(key)
    await until(lambda: len(worker.runs) >= 7, within=10)
    await queue.stop()
    times = [at for _, _, at in worker.runs]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    expected = [0.1, 0.2, 0.4, 0.4, 0.4, 0.4]
    for gap, want in zip(gaps, expected, strict=False):
        assert want <= gap < want + 0.15, gaps
    backoff = queue.failing(key)
    assert backoff is not None
    assert backoff.attempts >= 7
    assert errors.FAILURES.get("Test", errors.BUG) - before >= 7
    tracebacks = [r for r in caplog.records if "Traceback (most recent call last)" in r.getMessage()]
    assert len(tracebacks) == 1
    assert tracebacks[0].levelno == logging.ERROR
    assert "RuntimeError: boom in failing" in tracebacks[0].getMessage()


async def test_a_success_starts_the_backoff_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors, "BACKOFF_BASE_SECONDS", 0.05)
    worker = Worker(failing=True)
    queue = queue_for(worker, debounce=0.01)
    key = ("ns", "a")
    queue.schedule(key)
    await until(lambda: len(worker.runs) >= 3)
    worker.failing = False
    await until(lambda: len(worker.runs) >= 4)
    assert queue.failing(key) is not None  # the worker says when it succeeded
    queue.succeeded(key)
    assert queue.failing(key) is None
    await queue.stop()


async def test_an_urgent_trigger_cuts_a_waiting_retry_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors, "BACKOFF_BASE_SECONDS", 30.0)
    worker = Worker(failing=True)
    queue = queue_for(worker, debounce=0.01)
    key = ("ns", "a")
    queue.schedule(key)
    await until(lambda: len(worker.runs) == 1)
    await asyncio.sleep(0.1)
    queue.schedule(key)  # an ordinary trigger waits with the retry
    await asyncio.sleep(0.1)
    assert len(worker.runs) == 1
    worker.failing = False
    queue.schedule(key, urgent=True)  # the spec changed: no waiting
    await until(lambda: len(worker.runs) == 2, within=1)
    await queue.stop()


async def test_a_worker_asking_for_a_retry_gets_one_with_what_it_was_asked() -> None:
    worker = Worker(retry_in=0.05)
    queue = queue_for(worker, debounce=0.01)
    queue.schedule(("ns", "a"), Wanted(full=False, relist=True))
    await until(lambda: len(worker.runs) >= 3)
    await queue.stop()
    assert {w for _, w, _ in worker.runs} == {Wanted(full=False, relist=True)}


async def test_forget_drops_the_state_the_backoff_and_a_scheduled_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors, "BACKOFF_BASE_SECONDS", 0.05)
    worker = Worker(failing=True)
    queue = queue_for(worker, debounce=0.01)
    key = ("ns", "a")
    queue.state(key).seen.append(Wanted())
    queue.schedule(key)
    await until(lambda: len(worker.runs) >= 2)
    queue.forget(key)
    assert queue.peek(key) is None
    assert queue.failing(key) is None
    assert len(queue) == 0
    runs = len(worker.runs)
    await asyncio.sleep(0.3)
    assert len(worker.runs) == runs  # no retry of a forgotten object
    assert len(queue) == 0
    await queue.stop()


async def test_forget_during_a_run_keeps_it_alone_and_drops_the_record_when_it_ends() -> None:
    worker = Worker(busy=0.2)
    queue = queue_for(worker, debounce=0.01)
    key = ("ns", "a")
    record = queue.state(key)
    queue.schedule(key, delay=0.0)
    await until(lambda: worker.active.get(key))
    queue.forget(key)
    assert queue.peek(key) is not record  # the run under way finds a fresh record
    queue.schedule(key, delay=0.0)  # the object is back: a second run, after the first
    await until(lambda: len(worker.runs) == 2)
    assert worker.most_at_once[key] == 1
    await until(lambda: not worker.active.get(key))
    queue.forget(key)
    await asyncio.sleep(0.05)
    assert len(queue) == 0
    await queue.stop()


async def test_forget_while_running_leaves_nothing_behind() -> None:
    worker = Worker(busy=0.1)
    queue = queue_for(worker, debounce=0.01)
    key = ("ns", "a")
    queue.schedule(key, delay=0.0)
    await until(lambda: worker.active.get(key))
    queue.forget(key)
    assert len(queue) == 1  # the run under way still holds the lock
    await until(lambda: not worker.active.get(key))
    await asyncio.sleep(0.01)
    assert len(queue) == 0
    await queue.stop()
