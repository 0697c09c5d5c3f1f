"""Reconcile one ModelRegistry: read, render, apply, prune, observe, write status.

Every trigger (a ModelRegistry event whose generation was not reconciled yet, the periodic
drift check, events of owned children and of referenced Secrets) funnels into
:meth:`RegistryReconciler.schedule`, which serialises per registry, so there is exactly one
reconcile of a registry at a time.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import logging
import os
import secrets
import socket
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..api.common import SecretKeyValue
from ..api.modelregistry import ModelRegistrySpec
from ..api.validation import parse_spec
from ..database import probe as db_probe
from ..kinds import (
    AUTH_CONFIG,
    CONFIG_MAP,
    ENDPOINT_SLICE,
    MODEL_REGISTRY,
    OPTIONAL_APIS,
    POD,
    PRUNABLE,
    ROUTE,
    SECRET,
    SERVICE,
    UNOWNED,
    Kind,
    kind_of,
    served,
)
from ..kube import ApiError, Kube, Obj
from ..names import (
    APP_LABEL,
    AVAILABLE,
    CONFIGURATION_ERROR,
    DEPLOYMENT_UNAVAILABLE,
    FALSE,
    FINALIZER,
    ISTIO_AVAILABLE,
    LEGACY_COMPONENT_LABEL,
    MODE_CONDITIONS,
    NAME_CONFLICT,
    NAMESPACE_LABEL,
    RECONCILE_ERROR,
    REGISTRY_COMPONENT,
    REGISTRY_LABEL,
    RETAIN_ANNOTATION,
    SERVICE_NAME_LABEL,
    TRUE,
    UNKNOWN,
)
from ..platform.capabilities import Capabilities
from ..render.database import DatabaseSecrets, referenced_keys
from ..render.defaults import apply_runtime_defaults, merge_patch, postgres_names, spec_json
from ..render.engine import RenderError
from ..render.features import Feature, IngressService, ModeConfigurationError
from ..render.modelregistry import (
    RegistryRef,
    RenderInputs,
    digest_of,
    render_features,
    render_model_registry,
)
from ..render.security.oauth_proxy import cookie_secret_name
from ..settings import OperatorSettings
from ..status.conditions import set_conditions
from ..status.modelregistry import (
    DatabaseState,
    Observation,
    registry_conditions,
    registry_hosts,
)
from ..status.security import SecurityObservation, auth_config_state, route_state
from .claims import Claims, NameConflict, Ref, ref_of
from .errors import Backoff, Failure, record_failure, value_problems
from .observed import ObservedChildren

log = logging.getLogger(__name__)

# The kinds a registry may own in its namespace (PRUNABLE: anything labelled as ours and no
# longer rendered is deleted) and those no owner reference can collect (UNOWNED: found by
# their labels), from the table in kinds.py; FINALIZER, set by kopf, cleans up the UNOWNED.
# A registry that renders UNOWNED objects but has no finalizer yet is tried again after this long.
FINALIZER_WAIT_SECONDS = 0.2
# Applied first: what pods of the later objects need to start.
FIRST_WAVE = {"ServiceAccount", "Secret", "ConfigMap", "PersistentVolumeClaim"}
PROBE_INTERVAL = 30.0
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
# While a registry starts, its conditions' messages change every few hundred milliseconds
# ("0 of 1 replicas updated", ...): a status refresh that changes messages only is written at
# most this often. A change of any condition's status or reason is written at once.
MESSAGE_HOLD_SECONDS = 2.0

EventSink = Callable[[Obj, str, str, str], None]


class ConfigurationError(Exception):
    """The spec or what it references cannot work; the message names the field."""


@dataclass
class ReconcileResult:
    available: bool = False
    configuration_error: str | None = None
    pruned: list[str] = field(default_factory=list)
    conflicts: list[NameConflict] = field(default_factory=list)
    retry_in: float | None = None  # failed: try again after this long


@dataclass
class _ProbeMemo:
    key: str
    at: float
    state: DatabaseState


@dataclass
class _Applied:
    """What the last full reconcile of a registry applied: enough to refresh status alone."""

    uid: str
    generation: int
    istio_gateway: bool  # what the status needs of the spec (not the spec: memory)
    spec_defaults: str
    # Compressed JSON, not dicts: about 5 KB a registry instead of 13 KB of JSON text (and far
    # more as dicts), decompressed and parsed only when a child event comes in.
    desired: dict[tuple[str, str], bytes]
    probe_target: db_probe.PostgresTarget | db_probe.MySQLTarget | None
    features: Feature = field(default_factory=Feature)
    # What the rendering depended on: while it is unchanged, ``desired`` is reused as is.
    render_key: Any = None
    conflicts: list[str] = field(default_factory=list)  # names held by other registries (messages)


def is_subset(desired: Any, live: Any) -> bool:
    """True when every field we set has the same value in the live object (SSA semantics)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and is_subset(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
        )
    return bool(desired == live)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decode(obj: Obj, key: str) -> str | None:
    if obj.get("kind") == "Secret":
        raw = (obj.get("data") or {}).get(key)
        return base64.b64decode(raw).decode("utf-8", "replace") if raw is not None else None
    value = (obj.get("data") or {}).get(key)
    return str(value) if value is not None else None


class RegistryReconciler:
    """Holds the clients and per-registry bookkeeping (locks, probe cache) of the operator."""

    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        capabilities: Callable[[], Capabilities],
        emit: EventSink | None = None,
        rediscover: Callable[[], None] | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.capabilities = capabilities
        self.rediscover = rediscover or (lambda: None)  # ask for a fresh API discovery soon
        self.emit = emit or (lambda body, type_, reason, message: None)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._queued: dict[tuple[str, str], bool] = {}  # key -> full reconcile wanted
        self._relist: set[tuple[str, str]] = set()  # keys whose observed children are re-read
        self._tasks: set[asyncio.Task[None]] = set()
        self._probes: dict[tuple[str, str], _ProbeMemo] = {}
        self._applied: dict[tuple[str, str], _Applied] = {}
        self._status: dict[tuple[str, str], bytes] = {}  # the status last read or written (packed)
        # (uid, generation) each registry was last reconciled to the end for (applied, or found
        # to be a configuration error): its events with that generation need nothing.
        self._done: dict[tuple[str, str], tuple[str, int]] = {}
        self._reconciling: dict[tuple[str, str], tuple[str, int]] = {}  # ... and the one queued or under way
        self._bodies: dict[tuple[str, str], Obj] = {}  # the newest body seen, for the queued reconcile
        # Registries being deleted (finalizer cleanup started), until their DELETED event: a
        # reconcile queued earlier must not apply their cross-namespace objects again.
        self._finalizing: set[tuple[str, str]] = set()
        # A message-only status change waiting: since when, and the timer that writes it.
        self._held: dict[tuple[str, str], tuple[float, asyncio.TimerHandle]] = {}
        self.observed = ObservedChildren()
        # The context of a kopf handler: kopf.event() (the emitted Events) only works in one, and
        # some triggers (the drift loop, API discovery) come from tasks started outside them.
        self._kopf_context: contextvars.Context | None = None
        self._slots = asyncio.Semaphore(MAX_RECONCILES)
        # Cluster-scoped and cross-namespace objects: which of them each registry owns.
        self._claims = Claims()
        # Registries whose last reconcile found a name held by another registry: tried again
        # as soon as this operator sees that object go (and at every resync anyway).
        self._conflicts: dict[tuple[str, str], list[Ref]] = {}
        # Failures since the last success or spec change (the backoff of the retries).
        self._failures: dict[tuple[str, str], Backoff] = {}
        # A retry waiting out its backoff is woken early by a change that may fix it.
        self._wake: dict[tuple[str, str], asyncio.Event] = {}

    # -- scheduling ----------------------------------------------------------------------
    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def run(self, namespace: str, name: str, *, prune: bool = True, relist: bool = True) -> ReconcileResult:
        """Full reconcile now (serialised with any other reconcile of the same registry)."""
        async with self._lock((namespace, name)):
            return await self._reconcile(namespace, name, prune=prune, relist=relist)

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
        key = (namespace, name)
        if relist:
            self._relist.add(key)
        if key in self._queued:
            self._queued[key] = self._queued[key] or full
            wake = self._wake.get(key)
            if urgent and wake is not None:
                wake.set()
            return
        self._queued[key] = full
        context = self._kopf_context.copy() if self._kopf_context is not None else None
        task = asyncio.get_running_loop().create_task(self._scheduled(namespace, name, delay), context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def registry_event(self, event_type: str | None, body: Obj) -> None:
        """A ModelRegistry watch event: reconcile a generation not reconciled yet.

        This replaces kopf's create / update / resume handlers: those need kopf's diff base, an
        annotation it patches onto every registry after each handled change (one more write and
        one more event per create), and a deep copy of the body on every event to compare with it.
        """
        if self._kopf_context is None:
            self._kopf_context = contextvars.copy_context()
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
        done = self._done.get(key)
        seen = (str(meta.get("uid")), int(meta.get("generation") or 0))
        failing = self._failures.get(key)
        if seen in (done, self._reconciling.get(key)) or (failing and seen == (failing.uid, failing.generation)):
            return  # our own status write, a label edit, ... (a failing one waits for its retry)
        # Never reconciled (no status yet): it owns nothing, no pruning or relisting needed.
        # Otherwise (a spec change, or first seen after the operator started) start over.
        existing = done is not None or bool(body.get("status"))
        self._bodies[key] = body
        self._reconciling[key] = seen  # from now on until that reconcile is over
        self.schedule(namespace, name, full=True, relist=existing, delay=0.0, urgent=True)

    async def _scheduled(self, namespace: str, name: str, delay: float | None = None) -> None:
        key = (namespace, name)
        # Children change in bursts (Deployment, ReplicaSet, Pod, slice): let them settle.
        if delay is None:
            delay = DEBOUNCE_SECONDS if self._queued.get(key, True) else STATUS_DEBOUNCE_SECONDS
        if delay > 0:
            wake = self._wake[key] = asyncio.Event()
            try:
                await asyncio.wait_for(wake.wait(), delay)
            except TimeoutError:
                pass
            finally:
                if self._wake.get(key) is wake:
                    del self._wake[key]
        full, relist, retry_in = True, False, None
        try:
            async with self._lock(key):
                full = self._queued.pop(key, True)
                relist = key in self._relist
                self._relist.discard(key)
                if full:
                    retry_in = (await self._reconcile(namespace, name, prune=relist, relist=relist)).retry_in
                else:
                    await self._refresh(namespace, name)
                    self._failures.pop(key, None)  # (a refresh runs only after a full reconcile succeeded)
        except Exception as exc:  # before the registry was read, or writing its status: no condition
            retry_in, _failure = self._failed(key, None, exc)
        if retry_in is not None:
            self.schedule(namespace, name, full=full, relist=relist, delay=retry_in)

    def _failed(
        self, key: tuple[str, str], body: Obj | None, exc: Exception, secrets: set[str] | None = None
    ) -> tuple[float, Failure]:
        """Count a failure, log it (its traceback once, not at every retry); the delay before the retry."""
        return record_failure(self._failures, key, body, exc, f"{key[0]}/{key[1]}", secrets or ())

    async def drift_loop(self, interval: float) -> None:
        """Re-apply every registry once per ``interval``, spread evenly over it: one task for all
        registries instead of a kopf timer (a task and a kept body) per registry."""
        while True:
            keys = list(self._done)
            if not keys:
                await asyncio.sleep(interval)
                continue
            pause = interval / len(keys)
            for key in keys:
                await asyncio.sleep(pause)
                if key in self._done and key not in self._failures:  # a failing one waits out its backoff
                    self.schedule(*key, full=True, relist=True)

    def drifted(self, namespace: str, name: str, child: Obj) -> bool:
        """Whether a child we render no longer carries what we applied (edited by hand)."""
        applied = self._applied.get((namespace, name))
        if applied is None:
            # Not applied yet: unless the first reconcile is applying it right now.
            return (namespace, name) not in self._reconciling
        packed = applied.desired.get(_ref(child))
        if packed is None:  # pods, endpoint slices: observed, not rendered
            return False
        desired = _unpack(packed)
        body = {k: v for k, v in desired.items() if k != "metadata"}
        return not (is_subset(body, child) and is_subset(_owned_meta(desired), child.get("metadata", {})))

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._probes.pop(key, None)
        self._applied.pop(key, None)
        self._status.pop(key, None)
        self._done.pop(key, None)
        self._reconciling.pop(key, None)
        self._bodies.pop(key, None)
        self._conflicts.pop(key, None)
        self._failures.pop(key, None)
        self._claims.forget(key)
        self._unhold(key)
        self.observed.forget(key)
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            self._locks.pop(key, None)

    async def _refresh(self, namespace: str, name: str) -> None:
        """Status only, from what the last full reconcile applied and what the watches saw."""
        key = (namespace, name)
        if key in self._finalizing:
            return
        applied, packed = self._applied.get(key), self._status.get(key)
        if applied is None or packed is None:
            await self._reconcile(namespace, name, prune=False, relist=False)
            return
        observation = await self._observe(
            namespace,
            name,
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
            "metadata": {"namespace": namespace, "name": name, "uid": applied.uid},
            "status": _unpack(packed),
        }
        await self._write_status(body, observation, applied.spec_defaults, hold=True)

    # -- the reconcile -------------------------------------------------------------------
    async def _reconcile(self, namespace: str, name: str, *, prune: bool, relist: bool) -> ReconcileResult:
        key = (namespace, name)
        try:
            async with self._slots:
                return await self._reconcile_locked(key, prune=prune, relist=relist)
        finally:
            self._reconciling.pop(key, None)

    async def _reconcile_locked(self, key: tuple[str, str], *, prune: bool, relist: bool) -> ReconcileResult:
        namespace, name = key
        # The body of the event that asked for this reconcile saves a read; any newer one
        # comes with its own event, and so its own reconcile.
        body = self._bodies.pop(key, None) or await self.kube.get(MODEL_REGISTRY, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp") or key in self._finalizing:
            self.forget(namespace, name)
            return ReconcileResult()
        self._status[key] = _pack(body.get("status") or {})
        meta = body["metadata"]
        generation = int(meta.get("generation", 0))
        self._reconciling[key] = (meta["uid"], generation)
        result = ReconcileResult()
        registry = RegistryRef(name, namespace, meta["uid"], dict(meta.get("annotations") or {}))
        spec_defaults = ""
        read_secrets: set[str] = set()  # kept out of any message and log line of a failure
        try:
            spec = self._validated_spec(body)
            effective = apply_runtime_defaults(spec, self.settings, name, self.capabilities())
            spec_defaults = _json_text(merge_patch(spec_json(spec), spec_json(effective)))
            inputs, probe_target = await self._resolve(namespace, name, effective, read_secrets)
            desired, features, render_key = self._render(key, registry, effective, inputs, body.get("spec"))
            if FINALIZER not in (meta.get("finalizers") or []) and any(_unowned(o, namespace) for o in desired):
                # Nothing would clean these up after a deletion: wait for kopf's finalizer first.
                # (Registries that own all they render start at once, in parallel with kopf.)
                self.schedule(namespace, name, full=True, relist=relist, delay=FINALIZER_WAIT_SECONDS)
                return ReconcileResult()
            applied = await self._apply(key, desired, result)
            previous = self._applied.get(key)
            # Pruning lists every kind we may own: do it only when something may be stale.
            # (A registry just created owns nothing yet: no listing needed then.)
            if prune or (previous is not None and previous.desired.keys() != {_ref(o) for o in desired}):
                result.pruned = await self._prune(namespace, name, meta["uid"], desired)
            istio_gateway = spec.istio is not None and spec.istio.gateway is not None
            observation = await self._observe(
                namespace,
                name,
                generation,
                istio_gateway,
                applied.get(("Deployment", name)),
                probe_target,
                relist=relist,
                features=features,
                conflicts=[str(c) for c in result.conflicts],
            )
            self._applied[key] = _Applied(
                meta["uid"],
                generation,
                istio_gateway,
                spec_defaults,
                {_ref(o): _pack(o) for o in desired},
                probe_target,
                features.for_status(),
                render_key,
                [str(c) for c in result.conflicts],
            )
        except ConfigurationError as exc:
            self._applied.pop(key, None)
            result.configuration_error = str(exc)
            observation = Observation(generation=generation, configuration_error=str(exc))
        except ApiError as exc:
            if exc.status in (400, 422):  # the API server rejected what the spec rendered
                result.configuration_error = f"the API server rejected a generated object: {exc.message}"
                observation = Observation(generation=generation, configuration_error=result.configuration_error)
            elif _optional_api_gone(exc):
                # Discovery listed this API a moment ago and it is gone now (uninstalled): not an
                # error of this registry. Discovery again; the next run renders without it.
                log.info("%s/%s: %s is no longer served; discovering the APIs again", namespace, name, exc.api_group)
                self.rediscover()
                self.schedule(namespace, name, full=True, relist=True, delay=RETRY_SECONDS)
                return ReconcileResult()
            else:
                return await self._reconcile_failed(key, body, exc, read_secrets)
        except Exception as exc:  # API trouble, a claim that kept racing, a bug, an input nobody foresaw
            return await self._reconcile_failed(key, body, exc, read_secrets)
        available = await self._write_status(body, observation, spec_defaults, result)
        if key in self._status:  # not forgotten meanwhile (deleted)
            self._done[key] = (meta["uid"], generation)
        self._failures.pop(key, None)  # reconciled: the next failure starts the backoff over
        self._note_conflicts(key, result.conflicts)
        result.available = available
        return result

    async def _reconcile_failed(
        self, key: tuple[str, str], body: Obj, exc: Exception, read_secrets: set[str]
    ) -> ReconcileResult:
        """A condition saying what went wrong (``ReconcileError``), and a retry with backoff."""
        self._applied.pop(key, None)  # what was applied is unknown now: the retry renders anew
        if await self.kube.get(MODEL_REGISTRY, *key) is None:
            self.forget(*key)  # deleted while we worked: nothing to report
            return ReconcileResult()
        delay, failure = self._failed(key, body, exc, read_secrets)
        generation = int(body["metadata"].get("generation") or 0)
        message = f"{failure.message} (retrying in {delay:.0f} s)"
        try:
            await self._write_status(body, Observation(generation=generation, reconcile_error=message), "")
        except Exception as write_exc:  # the API server is in trouble too: the retry reports it
            log.debug("%s/%s: the failure could not be reported in the status: %s", *key, write_exc)
        return ReconcileResult(retry_in=delay)

    def _render(
        self,
        key: tuple[str, str],
        registry: RegistryRef,
        spec: ModelRegistrySpec,
        inputs: RenderInputs,
        raw_spec: Any,
    ) -> tuple[list[Obj], Feature, Any]:
        """Render, or reuse what was applied last when nothing the rendering depends on changed.

        A template that cannot hold a value of the spec (one the schema should have refused) is a
        configuration error naming that field; any other render failure is a bug (ReconcileError).
        """
        capabilities = self.capabilities()
        render_key = (registry, spec, inputs, capabilities)
        applied = self._applied.get(key)
        if applied is not None and applied.render_key == render_key:
            return [_unpack(packed) for packed in applied.desired.values()], applied.features, render_key
        try:
            features = render_features(registry, spec, self.settings, capabilities, inputs)
            desired = render_model_registry(registry, spec, self.settings, capabilities, inputs, features)
        except ModeConfigurationError as exc:
            raise ConfigurationError(str(exc)) from None
        except RenderError:
            problems = value_problems(raw_spec)
            if problems:
                raise ConfigurationError("; ".join(problems)) from None
            raise
        return desired, features, render_key

    def _validated_spec(self, body: Obj) -> ModelRegistrySpec:
        spec, problems = parse_spec(body.get("spec"), name=body["metadata"]["name"])
        if problems or spec is None:
            raise ConfigurationError("invalid spec: " + "; ".join(str(p) for p in problems))
        required_ns = self.settings.registries_namespace
        namespace = body["metadata"]["namespace"]
        if required_ns and namespace != required_ns:
            raise ConfigurationError(f"metadata.namespace: registries must be created in namespace {required_ns}")
        return spec

    async def _resolve(
        self, namespace: str, name: str, spec: ModelRegistrySpec, read_secrets: set[str]
    ) -> tuple[RenderInputs, db_probe.PostgresTarget | db_probe.MySQLTarget | None]:
        """Read what the spec references; a missing Secret / key is a configuration error.

        Every secret value read (and generated) is added to ``read_secrets``.
        """
        generated_password = ""
        pg = spec.postgres
        if pg is not None and pg.generate_deployment:
            names = postgres_names(name)
            existing = await self.kube.get(SECRET, namespace, names["secret_name"])
            generated_password = (_decode(existing, "password") if existing else None) or secrets.token_urlsafe(16)
            read_secrets.add(generated_password)
        refs = referenced_keys(spec)
        objects = await asyncio.gather(
            *(
                self.kube.get(
                    SECRET if kind == "secret" else CONFIG_MAP, namespace, ref if isinstance(ref, str) else ref.name
                )
                for kind, ref in refs
            )
        )
        values: dict[tuple[str, str], str] = {}
        digest_parts: dict[str, Any] = {}
        for (kind, ref), obj in zip(refs, objects, strict=True):
            obj_name = ref if isinstance(ref, str) else ref.name
            label = "Secret" if kind == "secret" else "ConfigMap"
            generated = pg is not None and pg.generate_deployment and obj_name == postgres_names(name)["secret_name"]
            if obj is None:
                if generated:
                    values[(obj_name, "password")] = generated_password
                    continue
                raise ConfigurationError(f"{label} {obj_name!r} not found in namespace {namespace}")
            # Only digests of the data go further: the values themselves never leave here.
            digest_parts[f"{kind}/{obj_name}"] = obj.get("data") or {}
            if isinstance(ref, SecretKeyValue):
                value = _decode(obj, ref.key)
                if value is None:
                    raise ConfigurationError(f"{label} {obj_name!r} has no key {ref.key!r}")
                if kind == "secret":
                    read_secrets.add(value)
                values[(obj_name, ref.key)] = value
        db_secrets = DatabaseSecrets(
            password=_lookup(values, _db_field(spec, "password_secret")),
            ssl_password=_lookup(values, pg.ssl_password_secret if pg else None),
        )
        cookie = ""
        if spec.oauth_proxy is not None:  # generated once, then kept
            existing = await self.kube.get(SECRET, namespace, cookie_secret_name(name))
            cookie = (_decode(existing, "cookie-secret.txt") if existing else None) or secrets.token_hex(16)
            read_secrets.add(cookie)
        ingress = await self._istio_ingress(spec)
        inputs = RenderInputs(db_secrets, generated_password, digest_of(digest_parts), cookie, ingress)
        return inputs, self._probe_target(spec, values, db_secrets)

    async def _istio_ingress(self, spec: ModelRegistrySpec) -> IngressService | None:
        """The unique ingress gateway Service the gateway Routes point at (OpenShift only)."""
        gateway = spec.istio.gateway if spec.istio is not None else None
        if gateway is None or not self.capabilities().openshift_routes:
            return None
        if not any(s is not None and s.gateway_route == "enabled" for s in (gateway.rest, gateway.grpc)):
            return None
        selector = f"istio={gateway.istio_ingress or self.settings.default_istio_ingress}"
        if gateway.control_plane:
            selector += f",istio.io/rev={gateway.control_plane}"
        services = await self.kube.list(SERVICE, None, selector)
        if len(services) != 1:
            return None
        meta = services[0]["metadata"]
        return IngressService(meta["namespace"], meta["name"])

    def _probe_target(
        self, spec: ModelRegistrySpec, values: dict[tuple[str, str], str], db: DatabaseSecrets
    ) -> db_probe.PostgresTarget | db_probe.MySQLTarget | None:
        if self.settings.database_probe == "off":
            return None
        if spec.postgres is not None:
            pg = spec.postgres
            return db_probe.PostgresTarget(
                host=pg.address,
                port=pg.port,
                database=pg.database or pg.username or "postgres",
                username=pg.username or "",
                password=db.password,
                sslmode=pg.ssl_mode,
                sslrootcert=_lookup(values, pg.ssl_root_certificate_config_map or pg.ssl_root_certificate_secret),
                sslcert=_lookup(values, pg.ssl_certificate_secret),
                sslkey=_lookup(values, pg.ssl_key_secret),
            )
        if spec.mysql is not None:
            my = spec.mysql
            return db_probe.MySQLTarget(
                host=my.host,
                port=my.port,
                database=my.database,
                username=my.username,
                password=db.password,
                ssl_ca=_lookup(values, my.ssl_root_certificate_config_map or my.ssl_root_certificate_secret),
                ssl_cert=_lookup(values, my.ssl_certificate_secret),
                ssl_key=_lookup(values, my.ssl_key_secret),
                ssl_cipher=my.ssl_cipher,
                verify_server_cert=bool(my.verify_server_cert),
            )
        return None

    async def _apply(
        self, key: tuple[str, str], desired: list[Obj], result: ReconcileResult
    ) -> dict[tuple[str, str], Obj]:
        """Apply every object; one whose name another registry holds is skipped (``result.conflicts``)."""
        applied: dict[tuple[str, str], Obj] = {}
        waves = [[o for o in desired if o["kind"] in FIRST_WAVE], [o for o in desired if o["kind"] not in FIRST_WAVE]]
        for wave in waves:
            # Every apply ends before an error is raised: one still under way after this
            # reconcile gave up could re-create an object the finalizer has just deleted.
            live = await asyncio.gather(*(self._apply_one(key, obj) for obj in wave), return_exceptions=True)
            for obj, answer in zip(wave, live, strict=True):
                if isinstance(answer, NameConflict):
                    result.conflicts.append(answer)
                elif isinstance(answer, BaseException):
                    raise answer
                else:
                    applied[(obj["kind"], obj["metadata"]["name"])] = answer
        return applied

    async def _apply_one(self, key: tuple[str, str], obj: Obj) -> Obj:
        if _outside(obj, key[0]):  # another registry of the same name may want it: claimed
            return await self._claims.apply(self.kube, obj, key)
        return await self.kube.apply(obj)

    def _note_conflicts(self, key: tuple[str, str], conflicts: list[NameConflict]) -> None:
        if not conflicts:
            self._conflicts.pop(key, None)
            return
        self._conflicts[key] = [c.ref for c in conflicts]
        if any(c.deleting for c in conflicts):  # the holder is going: its name is free soon
            self.schedule(*key, full=True, delay=RETRY_SECONDS)

    def release(self, ref: Ref) -> None:
        """An unowned object is gone: the registries that wanted its name try to take it now."""
        for key, refs in list(self._conflicts.items()):
            if ref in refs:
                self.schedule(*key, full=True, delay=DEBOUNCE_SECONDS)

    async def _prune(self, namespace: str, name: str, uid: str, desired: list[Obj]) -> list[str]:
        wanted = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in desired}
        groups = self.capabilities().groups
        kinds = served(PRUNABLE, groups)
        owned, unowned = await asyncio.gather(
            asyncio.gather(*(self._list_served(kind, namespace, f"{REGISTRY_LABEL}={name}") for kind in kinds)),
            self._list_unowned(namespace, name),
        )
        doomed = []
        for item in (item for items in owned for item in items):
            meta = item["metadata"]
            if (item["kind"], meta.get("namespace"), meta["name"]) in wanted:
                continue
            if (meta.get("annotations") or {}).get(RETAIN_ANNOTATION) == "true":
                continue  # data (PVC, generated credentials) outlives a configuration switch
            if not any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or []):
                continue  # not ours to delete
            doomed.append(item)
        doomed.extend(
            item
            for item in unowned
            if (item["kind"], item["metadata"].get("namespace"), item["metadata"]["name"]) not in wanted
        )
        return await self._delete(doomed)

    async def _delete(self, doomed: list[Obj]) -> list[str]:
        """Delete ``doomed`` (each only while it still has the uid we listed); their kind/name."""
        metas = [o["metadata"] for o in doomed]
        await asyncio.gather(
            *(
                self.kube.delete(kind_of(o), m.get("namespace"), m["name"], m["uid"])
                for o, m in zip(doomed, metas, strict=True)
            )
        )
        for obj in doomed:
            self.release(ref_of(obj))
        return [f"{o['kind']}/{m['name']}" for o, m in zip(doomed, metas, strict=True)]

    async def _list_unowned(self, namespace: str, name: str) -> list[Obj]:
        """Our cluster-scoped and cross-namespace objects (found by name and namespace labels)."""
        groups = self.capabilities().groups
        selector = f"{REGISTRY_LABEL}={name},{NAMESPACE_LABEL}={namespace}"
        kinds = served(UNOWNED, groups)
        listings = await asyncio.gather(*(self._list_served(kind, None, selector) for kind in kinds))
        return [item for items in listings for item in items]

    async def _list_served(self, kind: Kind, namespace: str | None, selector: str) -> list[Obj]:
        """A kind's objects; none when its optional API went away since the last discovery (its
        CRD's deletion deleted them all), and discovery is asked to catch up."""
        try:
            return await self.kube.list(kind, namespace, selector)
        except ApiError as exc:
            if _optional_api_gone(exc):
                self.rediscover()
                return []
            raise

    async def finalize(self, namespace: str, name: str) -> list[str]:
        """Delete what owner references cannot collect: cluster-scoped and cross-namespace objects.

        A reconcile under way finishes first (its apply could otherwise re-create an object
        after the listing below), and none starts afterwards.
        """
        key = (namespace, name)
        self._finalizing.add(key)
        async with self._lock(key):
            deleted = await self._delete(await self._list_unowned(namespace, name))
            self.forget(namespace, name)
        return deleted

    async def reconcile_all(self) -> None:
        """Schedule every registry (the cluster's optional APIs changed)."""
        namespace = self.settings.watch_namespace or None
        for body in await self.kube.list(MODEL_REGISTRY, namespace):
            meta = body["metadata"]
            self.schedule(meta["namespace"], meta["name"], full=True, relist=True)

    async def _observe(
        self,
        namespace: str,
        name: str,
        generation: int,
        istio_gateway: bool,
        deployment: Obj | None,
        probe_target: db_probe.PostgresTarget | db_probe.MySQLTarget | None,
        *,
        relist: bool,
        features: Feature,
        conflicts: list[str] | None = None,
    ) -> Observation:
        key = (namespace, name)
        if relist:  # start over from the API server, in case a watch missed something
            pods, slices = await asyncio.gather(
                self.kube.list(POD, namespace, f"{APP_LABEL}={name},{LEGACY_COMPONENT_LABEL}={REGISTRY_COMPONENT}"),
                self.kube.list(ENDPOINT_SLICE, namespace, f"{SERVICE_NAME_LABEL}={name}"),
            )
            self.observed.replace(key, pods, slices)
        database, security = await asyncio.gather(
            self._probe(namespace, name, probe_target), self._observe_security(namespace, istio_gateway, features)
        )
        return Observation(
            generation=generation,
            deployment=deployment if deployment is not None else self.observed.deployment(key),
            ready_endpoints=self.observed.ready_endpoints(key),
            pods=self.observed.pods(key),
            database=database,
            security=security,
            exposed_hosts=features.hosts,
            name_conflicts=conflicts or [],
        )

    async def _observe_security(self, namespace: str, istio_gateway: bool, features: Feature) -> SecurityObservation:
        """Admission of the Routes and readiness of the AuthConfigs the mode conditions wait for."""
        routes = await asyncio.gather(*(self.kube.get(ROUTE, r.namespace, r.name) for r in features.routes))
        auth_configs = await asyncio.gather(*(self.kube.get(AUTH_CONFIG, namespace, n) for n in features.auth_configs))
        states = [route_state(r.condition, body, r.name) for r, body in zip(features.routes, routes, strict=True)]
        states += [
            auth_config_state(ISTIO_AVAILABLE, body, n)
            for n, body in zip(features.auth_configs, auth_configs, strict=True)
        ]
        missing = list(features.missing_apis)
        return SecurityObservation(
            mode=features.mode,
            sidecar=features.sidecar,
            gateway=istio_gateway,
            missing_apis=missing,
            problems=features.problems,
            objects=states,
        )

    async def _probe(
        self, namespace: str, name: str, target: db_probe.PostgresTarget | db_probe.MySQLTarget | None
    ) -> DatabaseState | None:
        if target is None:
            return None
        key = (namespace, name)
        target_key = digest_of({"target": repr(target), "password": digest_of({"p": target.password or ""})})
        memo = self._probes.get(key)
        if memo and memo.key == target_key and time.monotonic() - memo.at < PROBE_INTERVAL:
            return memo.state
        state = await self._probe_now(target)
        self._probes[key] = _ProbeMemo(target_key, time.monotonic(), state)
        return state

    async def _probe_now(self, target: db_probe.PostgresTarget | db_probe.MySQLTarget) -> DatabaseState:
        try:
            await asyncio.to_thread(socket.getaddrinfo, target.host, target.port)
        except OSError:
            where = "inside the cluster" if os.environ.get("KUBERNETES_SERVICE_HOST") else "where it runs"
            return DatabaseState(
                UNKNOWN, db_probe.UNKNOWN, f"the operator cannot resolve {target.host} from {where}; not probed"
            )
        outcome = await db_probe.probe(target, timeout=self.settings.database_probe_timeout)
        if outcome.ok:
            return DatabaseState(TRUE, outcome.reason, outcome.message)
        status = UNKNOWN if outcome.reason == db_probe.UNKNOWN else FALSE
        return DatabaseState(status, outcome.reason, outcome.message)

    async def _write_status(
        self,
        body: Obj,
        obs: Observation,
        spec_defaults: str,
        result: ReconcileResult | None = None,
        *,
        hold: bool = False,
    ) -> bool:
        """Write the status when it changed; ``hold``: a change of messages only may wait."""
        meta = body["metadata"]
        old = body.get("status") or {}
        previous = old.get("conditions") or []
        desired = registry_conditions(obs, previous)
        # A mode switched off (or to another) leaves no condition behind.
        wanted_types = {c.type for c in desired}
        kept = [c for c in previous if c.get("type") not in MODE_CONDITIONS or c.get("type") in wanted_types]
        conditions = set_conditions(kept, desired, _now(), obs.generation)
        hosts = registry_hosts(meta["name"], meta["namespace"], obs.exposed_hosts)
        status: dict[str, Any] = {
            "observedGeneration": obs.generation,
            "conditions": conditions,
            "hosts": hosts,
            "hostsStr": ",".join(hosts),
            "specDefaults": spec_defaults or old.get("specDefaults") or "{}",
        }
        available = next(c for c in conditions if c["type"] == AVAILABLE)
        key = (meta["namespace"], meta["name"])
        if any(old.get(k) != v for k, v in status.items()):
            messages_only = (
                hold
                and _states(conditions) == _states(old.get("conditions"))
                and all(old.get(k) == v for k, v in status.items() if k != "conditions")
            )
            if messages_only:
                if key not in self._held:  # not through schedule(): that would hold back other triggers
                    timer = asyncio.get_running_loop().call_later(MESSAGE_HOLD_SECONDS, self._release, key)
                    self._held[key] = (time.monotonic(), timer)
                if time.monotonic() - self._held[key][0] < MESSAGE_HOLD_SECONDS:
                    return bool(available["status"] == TRUE)
            self._unhold(key)
            try:
                await self.kube.merge_patch(
                    MODEL_REGISTRY, meta["namespace"], meta["name"], {"status": status}, "status"
                )
            except ApiError as exc:
                if exc.not_found:  # deleted meanwhile: nothing left to report on
                    self.forget(*key)
                    return False
                raise
            self._status[key] = _pack({**old, **status})
            before: Obj = next((c for c in old.get("conditions") or [] if c.get("type") == AVAILABLE), {})
            if (before.get("status"), before.get("reason")) != (available["status"], available["reason"]):
                log.info(
                    "%s/%s: Available=%s (%s) %s",
                    *key,
                    available["status"],
                    available["reason"],
                    available["message"],
                )
            self._events(body, previous, available, obs, result)
        else:
            self._unhold(key)  # back to what was written
        return bool(available["status"] == TRUE)

    def _release(self, key: tuple[str, str]) -> None:
        """The hold of a message-only status change is over: refresh (and so write) it."""
        self.schedule(*key, full=False, delay=0.0)

    def _unhold(self, key: tuple[str, str]) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            held[1].cancel()

    def _events(
        self, body: Obj, previous: list[Obj], available: Obj, obs: Observation, result: ReconcileResult | None
    ) -> None:
        before = next((c for c in previous if c.get("type") == AVAILABLE), None)
        old_generation = (body.get("status") or {}).get("observedGeneration")
        failed = obs.configuration_error or obs.reconcile_error
        if before is None and not failed:
            self.emit(body, "Normal", "Created", "Created the registry's objects")
        elif old_generation is not None and old_generation != obs.generation and not failed:
            self.emit(body, "Normal", "Updated", f"Applied generation {obs.generation}")
        if result and result.pruned:
            self.emit(body, "Normal", "Pruned", "Removed " + ", ".join(result.pruned))
        if before is not None and (before.get("status"), before.get("reason")) == (
            available["status"],
            available["reason"],
        ):
            return
        if available["status"] == TRUE:
            self.emit(body, "Normal", "Available", available["message"])
        elif available["reason"] in (CONFIGURATION_ERROR, RECONCILE_ERROR, NAME_CONFLICT, DEPLOYMENT_UNAVAILABLE):
            self.emit(body, "Warning", available["reason"], available["message"])


def _optional_api_gone(exc: ApiError) -> bool:
    """A 404 from an optional API's group: discovery listed it, and it was uninstalled since."""
    return exc.not_found and exc.api_group in OPTIONAL_APIS


def _states(conditions: list[Obj] | None) -> list[tuple[Any, Any, Any]]:
    """What a condition says, without its message and times."""
    return [(c.get("type"), c.get("status"), c.get("reason")) for c in conditions or []]


def _pack(value: Obj) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 1)


def _unpack(packed: bytes) -> Obj:
    value: Obj = json.loads(zlib.decompress(packed))
    return value


def _unowned(obj: Obj, namespace: str) -> bool:
    """Whether no owner reference can collect ``obj`` (cluster-scoped, or in another namespace)."""
    kind = kind_of(obj)
    return not kind.namespaced or kind in UNOWNED or obj["metadata"].get("namespace", namespace) != namespace


def _outside(obj: Obj, namespace: str) -> bool:
    """Whether ``obj`` is cluster-scoped or in another namespace: its name is not unique to the
    registry's namespace (in its own namespace, the API server keeps two registries' names apart)."""
    return not kind_of(obj).namespaced or obj["metadata"].get("namespace", namespace) != namespace


def _ref(obj: Obj) -> tuple[str, str]:
    return obj.get("kind", ""), (obj.get("metadata") or {}).get("name", "")


def _owned_meta(desired: Obj) -> Obj:
    """The metadata fields we set that a hand edit could change (labels, annotations)."""
    meta = desired.get("metadata", {})
    return {k: meta[k] for k in ("labels", "annotations") if k in meta}


def _lookup(values: dict[tuple[str, str], str], ref: SecretKeyValue | None) -> str | None:
    return values.get((ref.name, ref.key)) if ref is not None else None


def _db_field(spec: ModelRegistrySpec, attr: str) -> SecretKeyValue | None:
    config = spec.postgres or spec.mysql
    return getattr(config, attr, None) if config is not None else None


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
