"""What the admission webhooks decide, as pure functions of the objects under review.

:func:`default_spec` is the mutation: the defaults the upstream operator's webhook writes into a
spec. :func:`validate` is the validation: the rules the CRD's CEL cannot express, because they
depend on other objects (a registry name shared with a registry in another namespace, where both
would own the same cluster-scoped object) or on the operator's settings (``REGISTRIES_NAMESPACE``,
the defaults a security mode needs). Every problem names its field (``spec.x.y: ...``).

The reconcile checks the same things on its own (the webhook may be down, or not installed):
a conflicting name is ``NameConflict``, a wrong spec ``ConfigurationError``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..api.validation import SpecProblem, parse_spec
from ..kinds import UNOWNED, kind_of
from ..platform.capabilities import Capabilities
from ..render.defaults import apply_runtime_defaults
from ..render.features import ModeConfigurationError
from ..render.modelregistry import RegistryRef, RenderInputs, render_features
from ..settings import OperatorSettings

Ref = tuple[str, str | None, str]  # kind, namespace (None: cluster-scoped), name


def default_spec(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """The spec with the upstream webhook's defaults written in (a new dict; ``spec`` is untouched).

    As upstream (``ModelRegistry.Default`` in v0.3.8): ``rest.serviceRoute`` is ``disabled``
    unless given; a ``postgres`` block without ``host`` / ``hostAddress`` that does not ask for
    ``generateDeployment``, and a ``mysql`` block without ``host``, are dropped (such empty
    blocks appear when a tool fills in the CRD's defaults); a proxy's ``serviceRoute`` is
    ``enabled`` unless given. Migrations of old specs belong here too, as further steps.
    """
    out: dict[str, Any] = copy.deepcopy(dict(spec or {}))
    rest = out.get("rest")
    if not isinstance(rest, dict):
        rest = out["rest"] = {} if rest is None else rest
    if isinstance(rest, dict) and not rest.get("serviceRoute"):
        rest["serviceRoute"] = "disabled"
    postgres = out.get("postgres")
    if isinstance(postgres, dict) and not (
        postgres.get("host") or postgres.get("hostAddress") or postgres.get("generateDeployment") is True
    ):
        del out["postgres"]
    mysql = out.get("mysql")
    if isinstance(mysql, dict) and not mysql.get("host"):
        del out["mysql"]
    for proxy in ("kubeRBACProxy", "oauthProxy"):
        config = out.get(proxy)
        if isinstance(config, dict) and not config.get("serviceRoute"):
            config["serviceRoute"] = "enabled"
    return out


@dataclass(frozen=True)
class Registry:
    """A ModelRegistry as admission sees it: where it is, its spec, whether it is going away."""

    namespace: str
    name: str
    spec: Any
    deleting: bool = False

    @classmethod
    def of(cls, body: Mapping[str, Any], namespace: str | None = None) -> Registry:
        meta = body.get("metadata") or {}
        return cls(
            namespace=str(meta.get("namespace") or namespace or ""),
            name=str(meta.get("name") or ""),
            spec=body.get("spec"),
            deleting=bool(meta.get("deletionTimestamp")),
        )


def describe(ref: Ref) -> str:
    kind, namespace, name = ref
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def shared_objects(registry: Registry, settings: OperatorSettings, capabilities: Capabilities) -> frozenset[Ref]:
    """The objects outside its namespace (cluster-scoped, or in a namespace of the operator's
    settings) that the registry would own, named by its name alone: what a registry of the same
    name in another namespace would render too. Empty for a spec that does not parse."""
    spec, problems = parse_spec(registry.spec if isinstance(registry.spec, dict) else None)
    if spec is None or problems:
        return frozenset()
    effective = apply_runtime_defaults(spec, settings, registry.name, capabilities)
    try:
        features = render_features(
            RegistryRef(registry.name, registry.namespace, ""), effective, settings, capabilities, RenderInputs()
        )
    except ModeConfigurationError:
        return frozenset()
    refs: set[Ref] = set()
    for obj in features.objects:
        kind = kind_of(obj)
        meta = obj["metadata"]
        namespace = meta.get("namespace") if kind.namespaced else None
        if kind in UNOWNED and namespace != registry.namespace:
            refs.add((kind.kind, namespace, str(meta["name"])))
    return frozenset(refs)


def validate(
    new: Registry,
    old: Registry | None,
    others: Iterable[Registry],
    settings: OperatorSettings,
    capabilities: Capabilities,
) -> list[SpecProblem]:
    """Why ``new`` (created, or updated from ``old``) must be refused; empty when it may pass.

    ``others`` are the registries stored in the cluster (``new`` itself among them is ignored).
    A registry being deleted, and an update that leaves the spec as it was (kopf's finalizer, a
    label), always pass: refusing those would keep a registry stored before a rule from going.
    """
    if new.deleting or (old is not None and old.spec == new.spec):
        return []
    problems: list[SpecProblem] = []
    if settings.registries_namespace and new.namespace != settings.registries_namespace:
        problems.append(
            SpecProblem(
                "metadata.namespace",
                f"registries must be created in namespace {settings.registries_namespace} "
                f"(REGISTRIES_NAMESPACE), not {new.namespace}",
            )
        )
    raw = new.spec if isinstance(new.spec, dict) else None
    spec, spec_problems = parse_spec(raw, new.name)
    problems.extend(spec_problems)
    if spec is None:
        return problems
    try:
        render_features(
            RegistryRef(new.name, new.namespace, ""),
            apply_runtime_defaults(spec, settings, new.name, capabilities),
            settings,
            capabilities,
            RenderInputs(),
        )
    except ModeConfigurationError as exc:
        field, sep, message = str(exc).partition(": ")
        problems.append(
            SpecProblem(field, message) if sep and field.startswith("spec") else SpecProblem("spec", str(exc))
        )
    problems.extend(_name_conflicts(new, old, others, settings, capabilities))
    return problems


def _name_conflicts(
    new: Registry,
    old: Registry | None,
    others: Iterable[Registry],
    settings: OperatorSettings,
    capabilities: Capabilities,
) -> list[SpecProblem]:
    wanted = shared_objects(new, settings, capabilities)
    if old is not None:  # an update is refused only for what it newly asks for
        wanted -= shared_objects(old, settings, capabilities)
    problems = []
    for other in sorted(others, key=lambda r: r.namespace):
        if other.name != new.name or other.namespace == new.namespace or not wanted:
            continue
        common = wanted & shared_objects(other, settings, capabilities)
        if not common:
            continue
        state = " (being deleted)" if other.deleting else ""
        objects = ", ".join(describe(ref) for ref in sorted(common, key=str))
        problems.append(
            SpecProblem(
                "metadata.name",
                f"ModelRegistry {other.namespace}/{other.name}{state} already has this name, and both would own "
                f"{objects} (named after the registry alone, not its namespace); give this registry another name",
            )
        )
    return problems
