"""The steps of a ModelRegistry's reconcile, in the order :mod:`..modelregistry` runs them.

1. :mod:`.resolve`: parse the spec, read the Secrets / ConfigMaps it references;
2. :mod:`.render`: the objects the spec asks for (reused while its inputs are unchanged);
3. :mod:`.apply`: server-side apply them, in two waves, claiming cross-namespace names;
4. :mod:`.prune`: delete what is ours and no longer rendered (and, at deletion, finalize);
5. :mod:`.observe`: what the children, the security objects and the database say;
6. :mod:`.status`: the conditions, written when they changed, and the events.

Each step is a function of :class:`Env` (the clients and settings), the registry's
:class:`RegistryState` and its inputs; this module holds those and the helpers they share.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...database import probe as db_probe
from ...kube import Kube, Obj
from ...platform.capabilities import Capabilities
from ...render.features import Feature
from ...settings import OperatorSettings
from ...status.modelregistry import DatabaseState
from ..claims import Claims, NameConflict, Ref

EventSink = Callable[[Obj, str, str, str], None]
Key = tuple[str, str]  # namespace, name
ProbeTarget = db_probe.PostgresTarget | db_probe.MySQLTarget


@dataclass
class Env:
    """What every step may use: the API client, the settings, the cluster's APIs, events."""

    kube: Kube
    settings: OperatorSettings
    capabilities: Callable[[], Capabilities]
    rediscover: Callable[[], None]  # ask for a fresh API discovery soon
    emit: EventSink


@dataclass
class ReconcileResult:
    available: bool = False
    configuration_error: str | None = None
    pruned: list[str] = field(default_factory=list)
    conflicts: list[NameConflict] = field(default_factory=list)
    retry_in: float | None = None  # failed: try again after this long


@dataclass
class ProbeMemo:
    key: str
    at: float
    state: DatabaseState


@dataclass
class Applied:
    """What the last full reconcile of a registry applied: enough to refresh status alone."""

    uid: str
    generation: int
    istio_gateway: bool  # what the status needs of the spec (not the spec: memory)
    spec_defaults: str
    # Compressed JSON, not dicts: about 5 KB a registry instead of 13 KB of JSON text (and far
    # more as dicts), decompressed and parsed only when a child event comes in.
    desired: dict[tuple[str, str], bytes]
    probe_target: ProbeTarget | None
    features: Feature = field(default_factory=Feature)
    # What the rendering depended on: while it is unchanged, ``desired`` is reused as is.
    render_key: Any = None
    conflicts: list[str] = field(default_factory=list)  # names held by other registries (messages)


@dataclass(slots=True)
class RegistryState:
    """Everything the operator keeps about one registry between reconciles; dropped in one piece
    (``WorkQueue.forget``) when the registry goes."""

    applied: Applied | None = None
    status: bytes | None = None  # the status last read or written (packed)
    # (uid, generation) the registry was last reconciled to the end for (applied, or found to be
    # a configuration error): its events with that generation need nothing.
    done: tuple[str, int] | None = None
    reconciling: tuple[str, int] | None = None  # ... and the one queued or under way
    body: Obj | None = None  # the newest body seen, for the queued reconcile
    probe: ProbeMemo | None = None
    # Names held by other registries that the last reconcile wanted: tried again as soon as this
    # operator sees one of them go (and at every resync anyway).
    conflicts: list[Ref] = field(default_factory=list)
    # A message-only status change waiting: since when, and the timer that writes it.
    held: tuple[float, Any] | None = None
    # Cluster-scoped and cross-namespace objects: the resourceVersions of those it owns.
    claims: Claims = field(default_factory=Claims)

    def unhold(self) -> None:
        if self.held is not None:
            self.held[1].cancel()
            self.held = None


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pack(value: Obj) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 1)


def unpack(packed: bytes) -> Obj:
    value: Obj = json.loads(zlib.decompress(packed))
    return value


def ref(obj: Obj) -> tuple[str, str]:
    """(kind, name): how an applied object is remembered."""
    return obj.get("kind", ""), (obj.get("metadata") or {}).get("name", "")


def json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
