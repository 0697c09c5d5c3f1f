"""Objects no owner reference can collect (cluster-scoped, or in another namespace), claimed by name.

Their names come from the registry's name alone (``<name>-auth-delegator``, ``<name>-users``,
``model-registry-<name>``, the upstream operator's names), so registries of the same name in two
namespaces render the same object. The first registry to *create* it owns it: its labels
(``modelregistry.opendatahub.io/registry`` + ``/namespace``) name that registry for good, and
another registry never applies over it, never prunes it and never deletes it.

The first claim is a create (``POST``), which the API server does for one request only: of two
registries creating at once one gets 409 AlreadyExists, reads the object and finds it is not its
own. Every later apply carries the ``resourceVersion`` the registry last saw on an object it
owns: if the object was deleted and re-created by someone else in between, the apply fails with
409 and the claim starts over, so there is no window between the read and the write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..kinds import kind_of
from ..kube import ApiError, Kube, Obj
from ..names import NAMESPACE_LABEL, REGISTRY_LABEL

# Tries before a claim gives up for this reconcile (each lost race re-reads the object).
CLAIM_ATTEMPTS = 4

Ref = tuple[str, str | None, str]  # kind, namespace (None: cluster-scoped), name


def ref_of(obj: Obj) -> Ref:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace"), meta["name"]


def describe(ref: Ref) -> str:
    kind, namespace, name = ref
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def owner_of(obj: Obj) -> tuple[str, str] | None:
    """The (namespace, name) of the registry an object's labels name, if they name one."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    name, namespace = labels.get(REGISTRY_LABEL), labels.get(NAMESPACE_LABEL)
    return (str(namespace), str(name)) if name and namespace else None


class NameConflict(Exception):
    """The object's name is taken by another registry (or by something that is no registry's)."""

    def __init__(self, ref: Ref, owner: tuple[str, str] | None, deleting: bool) -> None:
        self.ref = ref
        self.owner = owner
        self.deleting = deleting  # the holder is going away: worth trying again soon
        holder = f"ModelRegistry {owner[0]}/{owner[1]}" if owner else "an object no ModelRegistry created"
        state = " (being deleted)" if deleting else ""
        super().__init__(
            f"{describe(ref)} already exists and belongs to {holder}{state}; "
            "registries of the same name in different namespaces share its name, so this one is not "
            "applied (rename this registry, or delete the other one)"
        )


class ClaimRace(Exception):
    """The object changed hands faster than the claim could settle; the reconcile is retried."""


@dataclass
class Claims:
    """The resourceVersion each registry last saw on the unowned objects it owns."""

    versions: dict[tuple[str, str], dict[Ref, str]]

    def __init__(self) -> None:
        self.versions = {}

    def forget(self, owner: tuple[str, str]) -> None:
        self.versions.pop(owner, None)

    def drop(self, owner: tuple[str, str], ref: Ref) -> None:
        self.versions.get(owner, {}).pop(ref, None)

    async def apply(self, kube: Kube, obj: Obj, owner: tuple[str, str]) -> Obj:
        """Apply ``obj`` for ``owner``; :class:`NameConflict` when another registry holds its name."""
        ref = ref_of(obj)
        kind = kind_of(obj)
        known = self.versions.setdefault(owner, {})
        for _ in range(CLAIM_ATTEMPTS):
            version = known.get(ref)
            if version is None:
                try:
                    created = await kube.create(obj)
                except ApiError as exc:
                    if not exc.conflict:
                        raise
                    live = await kube.get(kind, ref[1], ref[2])
                    if live is None:
                        continue  # deleted since: create again
                    holder = owner_of(live)
                    if holder != owner:
                        deleting = bool(live["metadata"].get("deletionTimestamp"))
                        raise NameConflict(ref, holder, deleting) from None
                    version = str(live["metadata"]["resourceVersion"])
                else:
                    # Created by a POST: its fields belong to an "Update" entry of our manager,
                    # which would keep every field it set even after the applied object drops it.
                    # Hand them to our "Apply" entry, as a server-side apply would have made them;
                    # the apply below then settles the entry in its final form at once.
                    try:
                        version = await self._as_applied(kube, created)
                    except ApiError as exc:
                        if not (exc.conflict or exc.not_found):
                            raise
                        continue  # changed or gone since it was created: claim again
            try:
                applied = await kube.apply(_with_version(obj, version))
            except ApiError as exc:
                if exc.conflict or exc.not_found:
                    known.pop(ref, None)  # changed or gone since we last saw it: claim again
                    continue
                raise
            known[ref] = str(applied["metadata"]["resourceVersion"])
            return applied
        raise ClaimRace(f"{describe(ref)} kept changing while it was being applied")

    @staticmethod
    async def _as_applied(kube: Kube, created: Obj) -> str:
        meta = created["metadata"]
        entries = [
            {**entry, "operation": "Apply"} if entry.get("manager") == kube.field_manager else entry
            for entry in meta.get("managedFields") or []
        ]
        patched = await kube.merge_patch(
            kind_of(created),
            meta.get("namespace"),
            meta["name"],
            {"metadata": {"managedFields": entries, "resourceVersion": meta["resourceVersion"]}},
        )
        return str(patched["metadata"]["resourceVersion"])


def _with_version(obj: Obj, version: str) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}
