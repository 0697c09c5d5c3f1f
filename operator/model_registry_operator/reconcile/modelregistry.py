"""Reconcile one ModelRegistry: resolve, render, apply, prune, observe, write status (:mod:`.steps`).

Every trigger (a ModelRegistry event whose generation was not reconciled yet, the periodic
drift check, events of owned children and of referenced Secrets) funnels into
:meth:`RegistryReconciler.schedule`, i.e. the registry's :class:`.queue.WorkQueue`, which
serialises per registry, so there is exactly one reconcile of a registry at a time. What is kept
about a registry between reconciles is one :class:`.steps.RegistryState`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable

from ..kinds import MODEL_REGISTRY, PRUNABLE, UNOWNED
from ..kube import ApiError, Kube, Obj
from ..names import FINALIZER, MODEL_REGISTRY_KIND
from ..platform.capabilities import Capabilities
from ..render.defaults import apply_runtime_defaults, merge_patch, spec_json
from ..render.modelregistry import RegistryRef
from ..settings import OperatorSettings
from ..status.modelregistry import Observation
from .claims import NameConflict, Ref
from .errors import ConfigurationError, invalid_message, is_invalid, time_limit
from .observed import ObservedChildren
from .queue import Key, Wanted, WorkQueue
from .steps import (
    Applied,
    Env,
    EventSink,
    ReconcileResult,
    RegistryState,
    json_text,
    pack,
    ref,
    unpack,
)
from .steps.apply import apply, drifted, unowned
from .steps.observe import observe
from .steps.prune import finalize, optional_api_gone
from .steps.prune import prune as prune_children
from .steps.render import render
from .steps.resolve import resolve, validated_spec
from .steps.status import write_status

__all__ = [
    "FINALIZER",
    "PRUNABLE",
    "UNOWNED",
    "ConfigurationError",
    "ReconcileResult",
    "RegistryReconciler",
]

log = logging.getLogger(__name__)

# FINALIZER: set by kopf (its delete handler needs it) on every registry; cleans up the UNOWNED objects.
# A registry that renders UNOWNED objects but has no finalizer yet is tried again after this long.
FINALIZER_WAIT_SECONDS = 0.2
DEBOUNCE_SECONDS = 0.1
# A starting registry's children change many times a second; every status write is a
# ModelRegistry event the operator processes again, so status-only refreshes wait longer.
STATUS_DEBOUNCE_SECONDS = 0.5
# An optional API gone, or a name held by a registry being deleted: tried again after this long.
# (A failed reconcile is retried with backoff instead, see errors.backoff_delay.)
RETRY_SECONDS = 5.0
# Full reconciles under way at once. A burst of new registries otherwise renders all of them at
# once, each waiting for the API threads with its objects in memory (the operator's peak RSS).
MAX_RECONCILES = 16


class RegistryReconciler:
    """The clients, the work queue and the per-registry state of the ModelRegistry reconcile."""

    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        capabilities: Callable[[], Capabilities],
        emit: EventSink | None = None,
        rediscover: Callable[[], None] | None = None,
    ) -> None:
        self.env = Env(
            kube,
            settings,
            capabilities,
            rediscover or (lambda: None),
            emit or (lambda body, type_, reason, message: None),
        )
        self.queue: WorkQueue[RegistryState] = WorkQueue(
            self._work,
            RegistryState,
            resource=MODEL_REGISTRY_KIND,
            debounce=DEBOUNCE_SECONDS,
            status_debounce=STATUS_DEBOUNCE_SECONDS,
            close=RegistryState.unhold,
        )
        self.observed = ObservedChildren()
        # Registries being deleted (finalizer cleanup started), until their DELETED event: a
        # reconcile queued earlier must not apply their cross-namespace objects again. Kept apart
        # from the state on purpose: it outlives it (the finalizer drops the state).
        self._finalizing: set[Key] = set()
        self._slots = asyncio.Semaphore(MAX_RECONCILES)

    @property
    def kube(self) -> Kube:
        return self.env.kube

    @property
    def settings(self) -> OperatorSettings:
        return self.env.settings

    @property
    def capabilities(self) -> Callable[[], Capabilities]:
        return self.env.capabilities

    @property
    def emit(self) -> EventSink:
        return self.env.emit

    # -- scheduling ----------------------------------------------------------------------
    async def run(self, namespace: str, name: str, *, prune: bool = True, relist: bool = True) -> ReconcileResult:
        """Full reconcile now (serialised with any other reconcile of the same registry)."""
        async with self.queue.serialised((namespace, name)):
            return await self._reconcile((namespace, name), prune=prune, relist=relist)

    def schedule(
        self,
        namespace: str,
        name: str,
        *,
        full: bool = True,
        relist: bool = False,
        delay: float | None = None,
        urgent: bool = False,
    ) -> None:
        """Reconcile soon; bursts of triggers collapse into one run.

        ``full=False`` asks only for a fresh status (a child's status changed); a full
        reconcile is done anyway when nothing was applied yet or the spec moved on.
        ``delay`` overrides the debounce (0 for a new generation: nothing to wait for).
        ``urgent``: a change that may fix a failing reconcile (the spec, a referenced Secret)
        cuts short the backoff of a retry already waiting.
        """
        self.queue.schedule((namespace, name), Wanted(full, relist), delay=delay, urgent=urgent)

    def registry_event(self, event_type: str | None, body: Obj) -> None:
        """A ModelRegistry watch event: reconcile a generation not reconciled yet.

        This replaces kopf's create / update / resume handlers: those need kopf's diff base, an
        annotation it patches onto every registry after each handled change (one more write and
        one more event per create), and a deep copy of the body on every event to compare with it.
        """
        if self.queue.context is None:
            # kopf.event() (the emitted Events) only works in a kopf handler's context, and some
            # triggers (the drift loop, API discovery) come from tasks started outside them.
            self.queue.context = contextvars.copy_context()
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        if not namespace or not name:
            return
        key = (namespace, name)
        if event_type == "DELETED":
            self.forget(namespace, name)
            self._finalizing.discard(key)
            return
        if meta.get("deletionTimestamp"):
            return  # the finalizer's handler cleans up
        state = self.queue.peek(key)
        done = state.done if state is not None else None
        seen = (str(meta.get("uid")), int(meta.get("generation") or 0))
        failing = self.queue.failing(key)
        reconciling = state.reconciling if state is not None else None
        if seen in (done, reconciling) or (failing and seen == (failing.uid, failing.generation)):
            return  # our own status write, a label edit, ... (a failing one waits for its retry)
        # Never reconciled (no status yet): it owns nothing, no pruning or relisting needed.
        # Otherwise (a spec change, or first seen after the operator started) start over.
        existing = done is not None or bool(body.get("status"))
        state = self.queue.state(key)
        state.body = body
        state.reconciling = seen  # from now on until that reconcile is over
        self.schedule(namespace, name, full=True, relist=existing, delay=0.0, urgent=True)

    async def _work(self, key: Key, wanted: Wanted) -> float | None:
        """One run of the queue: a full reconcile, or a status refresh; the delay of a retry."""
        if wanted.full:
            return (await self._reconcile(key, prune=wanted.relist, relist=wanted.relist)).retry_in
        await self._refresh(key)
        self.queue.succeeded(key)  # (a refresh runs only after a full reconcile succeeded)
        return None

    async def drift_loop(self, interval: float) -> None:
        """Re-apply every registry once per ``interval``, spread evenly over it: one task for all
        registries instead of a kopf timer (a task and a kept body) per registry."""
        while True:
            keys = [key for key, state in self.queue.items() if state.done is not None]
            if not keys:
                await asyncio.sleep(interval)
                continue
            pause = interval / len(keys)
            for key in keys:
                await asyncio.sleep(pause)
                state = self.queue.peek(key)
                if state is not None and state.done is not None and not self.queue.failing(key):
                    self.schedule(*key, full=True, relist=True)  # a failing one waits out its backoff

    def drifted(self, namespace: str, name: str, child: Obj) -> bool:
        """Whether a child we render no longer carries what we applied (edited by hand)."""
        return drifted(self.queue.peek((namespace, name)), child)

    def forget(self, namespace: str, name: str) -> None:
        """Drop everything kept about a registry (it is gone, or starts over)."""
        self.queue.forget((namespace, name))
        self.observed.forget((namespace, name))

    def release(self, gone: Ref) -> None:
        """An unowned object is gone: the registries that wanted its name try to take it now."""
        for key, state in self.queue.items():
            if gone in state.conflicts:
                self.schedule(*key, full=True, delay=DEBOUNCE_SECONDS)

    def _note_conflicts(self, key: Key, state: RegistryState, conflicts: list[NameConflict]) -> None:
        state.conflicts = [c.ref for c in conflicts]
        if any(c.deleting for c in conflicts):  # the holder is going: its name is free soon
            self.schedule(*key, full=True, delay=RETRY_SECONDS)

    async def finalize(self, namespace: str, name: str) -> list[str]:
        """Delete what owner references cannot collect: cluster-scoped and cross-namespace objects.

        A reconcile under way finishes first (its apply could otherwise re-create an object
        after the listing), and none starts afterwards.
        """
        key = (namespace, name)
        self._finalizing.add(key)
        async with self.queue.serialised(key):
            async with time_limit(self.settings.reconcile_timeout, f"the cleanup of {namespace}/{name}"):
                deleted = await finalize(self.env, namespace, name, self.release)
            self.forget(namespace, name)
        return deleted

    async def reconcile_all(self) -> None:
        """Schedule every registry (the cluster's optional APIs changed)."""
        namespace = self.settings.watch_namespace or None
        for body in await self.kube.list(MODEL_REGISTRY, namespace):
            meta = body["metadata"]
            self.schedule(meta["namespace"], meta["name"], full=True, relist=True)

    async def stop(self) -> None:
        await self.queue.stop()

    # -- the reconcile -------------------------------------------------------------------
    async def _refresh(self, key: Key) -> None:
        """Status only, from what the last full reconcile applied and what the watches saw."""
        if key in self._finalizing:
            return
        state = self.queue.state(key)
        applied, packed = state.applied, state.status
        if applied is None or packed is None:
            await self._reconcile(key, prune=False, relist=False)
            return
        async with time_limit(self.settings.reconcile_timeout, f"the status refresh of {key[0]}/{key[1]}"):
            observation = await observe(
                self.env,
                state,
                self.observed,
                key,
                applied.generation,
                applied.istio_gateway,
                None,
                applied.probe_target,
                relist=False,
                features=applied.features,
                conflicts=applied.conflicts,
            )
        body = {
            "apiVersion": f"{MODEL_REGISTRY.api_version}",
            "kind": MODEL_REGISTRY.kind,
            "metadata": {"namespace": key[0], "name": key[1], "uid": applied.uid},
            "status": unpack(packed),
        }
        await self._write_status(key, state, body, observation, applied.spec_defaults, hold=True)

    async def _reconcile(self, key: Key, *, prune: bool, relist: bool) -> ReconcileResult:
        try:
            async with self._slots:
                return await self._reconcile_locked(key, prune=prune, relist=relist)
        finally:
            state = self.queue.peek(key)
            if state is not None:
                state.reconciling = None

    async def _reconcile_locked(self, key: Key, *, prune: bool, relist: bool) -> ReconcileResult:
        namespace, name = key
        state = self.queue.state(key)
        # The body of the event that asked for this reconcile saves a read; any newer one
        # comes with its own event, and so its own reconcile.
        body, state.body = state.body, None
        body = body or await self.kube.get(MODEL_REGISTRY, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp") or key in self._finalizing:
            self.forget(namespace, name)
            return ReconcileResult()
        state = self.queue.state(key)  # (a fresh one if forgotten during the read)
        state.status = pack(body.get("status") or {})
        meta = body["metadata"]
        generation = int(meta.get("generation", 0))
        state.reconciling = (meta["uid"], generation)
        result = ReconcileResult()
        spec_defaults = ""
        read_secrets: set[str] = set()  # kept out of any message and log line of a failure
        try:
            async with time_limit(self.settings.reconcile_timeout, f"the reconcile of {namespace}/{name}"):
                spec_defaults, observation, wait = await self._steps(
                    key, state, body, result, read_secrets, prune=prune, relist=relist
                )
            if wait:
                # Nothing would clean these up after a deletion: wait for kopf's finalizer first.
                # (Registries that own all they render start at once, in parallel with kopf.)
                self.schedule(namespace, name, full=True, relist=relist, delay=FINALIZER_WAIT_SECONDS)
                return ReconcileResult()
        except Exception as exc:  # sorted by the taxonomy of .errors
            if is_invalid(exc):  # the spec, what it references or what it rendered is wrong
                if isinstance(exc, ConfigurationError):
                    state.applied = None
                result.configuration_error = invalid_message(exc)
                observation = Observation(generation=generation, configuration_error=result.configuration_error)
            elif isinstance(exc, ApiError) and optional_api_gone(exc):
                # Discovery listed this API a moment ago and it is gone now (uninstalled): not an
                # error of this registry. Discovery again; the next run renders without it.
                log.info("%s/%s: %s is no longer served; discovering the APIs again", namespace, name, exc.api_group)
                self.env.rediscover()
                self.schedule(namespace, name, full=True, relist=True, delay=RETRY_SECONDS)
                return ReconcileResult()
            else:  # API trouble, a claim that kept racing, a bug, a time limit, an input nobody foresaw
                return await self._reconcile_failed(key, state, body, exc, read_secrets)
        available = await self._write_status(key, state, body, observation, spec_defaults, result)
        if self.queue.peek(key) is state:  # not forgotten meanwhile (deleted)
            state.done = (meta["uid"], generation)
        self.queue.succeeded(key)  # reconciled: the next failure starts the backoff over
        self._note_conflicts(key, state, result.conflicts)
        result.available = available
        return result

    async def _steps(
        self,
        key: Key,
        state: RegistryState,
        body: Obj,
        result: ReconcileResult,
        read_secrets: set[str],
        *,
        prune: bool,
        relist: bool,
    ) -> tuple[str, Observation, bool]:
        """resolve, render, apply, prune, observe: the spec defaults, the observation, and whether
        to wait for kopf's finalizer first."""
        namespace, name = key
        meta = body["metadata"]
        generation = int(meta.get("generation", 0))
        spec = validated_spec(body, self.settings)
        effective = apply_runtime_defaults(spec, self.settings, name, self.capabilities())
        spec_defaults = json_text(merge_patch(spec_json(spec), spec_json(effective)))
        inputs, probe_target = await resolve(self.env, namespace, name, effective, read_secrets)
        registry = RegistryRef(name, namespace, meta["uid"], dict(meta.get("annotations") or {}))
        desired, features, render_key = render(self.env, state, registry, effective, inputs, body.get("spec"))
        if FINALIZER not in (meta.get("finalizers") or []) and any(unowned(o, namespace) for o in desired):
            return spec_defaults, Observation(generation=generation), True
        live = await apply(self.env, state, key, desired, result)
        previous = state.applied
        # Pruning lists every kind we may own: do it only when something may be stale.
        # (A registry just created owns nothing yet: no listing needed then.)
        if prune or (previous is not None and previous.desired.keys() != {ref(o) for o in desired}):
            result.pruned = await prune_children(self.env, namespace, name, meta["uid"], desired, self.release)
        istio_gateway = spec.istio is not None and spec.istio.gateway is not None
        conflicts = [str(c) for c in result.conflicts]
        observation = await observe(
            self.env,
            state,
            self.observed,
            key,
            generation,
            istio_gateway,
            live.get(("Deployment", name)),
            probe_target,
            relist=relist,
            features=features,
            conflicts=conflicts,
        )
        state.applied = Applied(
            meta["uid"],
            generation,
            istio_gateway,
            spec_defaults,
            {ref(o): pack(o) for o in desired},
            probe_target,
            features.for_status(),
            render_key,
            conflicts,
        )
        return spec_defaults, observation, False

    async def _reconcile_failed(
        self, key: Key, state: RegistryState, body: Obj, exc: Exception, read_secrets: set[str]
    ) -> ReconcileResult:
        """A condition saying what went wrong (``ReconcileError``, ``Forbidden``), and a retry with backoff."""
        state.applied = None  # what was applied is unknown now: the retry renders anew
        if await self.kube.get(MODEL_REGISTRY, *key) is None:
            self.forget(*key)  # deleted while we worked: nothing to report
            return ReconcileResult()
        delay, failure = self.queue.failed(key, body, exc, read_secrets)
        generation = int(body["metadata"].get("generation") or 0)
        message = f"{failure.message} (retrying in {delay:.0f} s)"
        observation = Observation(generation, reconcile_error=message, reconcile_reason=failure.reason)
        try:
            await self._write_status(key, state, body, observation, "")
        except Exception as write_exc:  # the API server is in trouble too: the retry reports it
            log.debug("%s/%s: the failure could not be reported in the status: %s", *key, write_exc)
        return ReconcileResult(retry_in=delay)

    async def _write_status(
        self,
        key: Key,
        state: RegistryState,
        body: Obj,
        obs: Observation,
        spec_defaults: str,
        result: ReconcileResult | None = None,
        *,
        hold: bool = False,
    ) -> bool:
        return await write_status(
            self.env,
            state,
            body,
            obs,
            spec_defaults,
            result,
            hold=hold,
            release=lambda: self.schedule(*key, full=False, delay=0.0),
            gone=lambda: self.forget(*key),
        )
