"""The three upload intents against the model registry.

Order of work:

1. :meth:`Registration.check` runs every check that can fail (name taken, version exists,
   unknown ids) and creates nothing; :meth:`Registration.start` then creates or marks the
   entities, the artifact in state ``PENDING``. No byte has moved yet.
2. the caller transfers the model;
3. :meth:`Registration.complete` sets the artifact ``LIVE`` with its final URI, or
   :meth:`Registration.fail` marks it ``ABANDONED`` (an artifact that was ``LIVE`` before an
   ``update_artifact`` keeps its old state and URI), so a failed upload never looks complete.

Entities created by an upload carry the custom property :data:`INCOMPLETE_MARKER` (``"true"``)
until the upload completes, when it is removed (or set to ``"false"`` on a server that merges
custom properties on PATCH); a retry of ``create_model`` / ``create_version`` that finds its own
unfinished entities resumes with them instead of failing on "already exists". While the
artifact is unfinished it also carries :data:`UPLOADED_LAYERS` (:class:`ArtifactLayerJournal`):
the model layers already pushed, which a retry does not upload again.

Every call goes through :class:`~.registry.RegistryClient`, the official ``model-registry``
client's API (see there for the few lookups kept by hand, and why its ``ModelRegistry`` class
and types do not do this job: ``register_model`` takes over a model of the same name, and
their custom properties cannot be emptied, which the markers and the journal need).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from model_registry_upload_contract import INCOMPLETE_MARKER, UPLOADED_LAYERS

from .config import label
from .errors import RegistryError
from .metadata import ModelMetadata, string_value, typed_properties
from .registry import Json, RegistryClient

log = logging.getLogger(__name__)

ARTIFACT_OF_UNFINISHED = "modelregistry.opendatahub.io/upload-artifact"
"""Custom property of an unfinished version: the id of its artifact, for a retry to find it on
a server that cannot list a version's artifacts (see ``RegistryClient.parent_lookups``)."""
# UPLOADED_LAYERS (an artifact whose upload has not completed): a JSON list of the OCI
# descriptors of the model layers its attempts pushed (removed when the upload completes).
MAX_JOURNAL_CHARS = 256 * 1024
"""The journal stops growing beyond this (it only saves re-uploads)."""
DEFAULT_VERSION_NAME = "1.0.0"


@dataclass
class Ids:
    intent: str
    registered_model_id: str | None = None
    model_version_id: str | None = None
    model_artifact_id: str | None = None
    resumed: bool = False
    previous_state: str | None = None
    previous_uri: str | None = None
    marked: list[tuple[str, str]] = field(default_factory=list)
    """``(kind, id)`` of entities carrying the incomplete marker."""


class ArtifactLayerJournal:
    """The :class:`~.destinations.oci.LayerJournal` of one artifact: its :data:`UPLOADED_LAYERS`
    custom property, rewritten (with the artifact's other custom properties, which a PATCH
    replaces) each time a layer completes. A registry error only costs the record: the upload
    goes on."""

    def __init__(self, client: RegistryClient, artifact_id: str) -> None:
        self.client = client
        self.artifact_id = artifact_id
        self._lock = threading.Lock()
        artifact = client.get_model_artifact(artifact_id) or {}
        props: Json = artifact.get("customProperties") or {}
        self.props = {k: v for k, v in props.items() if k != UPLOADED_LAYERS}
        self.had_journal = UPLOADED_LAYERS in props
        self.entries = _parse_journal(props.get(UPLOADED_LAYERS))
        self._known = list(self.entries)
        if self.entries:
            log.info("an earlier attempt pushed %d model layers", len(self.entries))

    def known(self) -> list[dict[str, Any]]:
        return list(self._known)

    def record(self, descriptor: dict[str, Any]) -> None:
        with self._lock:
            if descriptor in self.entries:
                return
            entries = [*self.entries, descriptor]
            value = json.dumps(entries, sort_keys=True, separators=(",", ":"))
            if len(value) > MAX_JOURNAL_CHARS:
                return
            try:
                self.client.update_model_artifact(
                    self.artifact_id,
                    {
                        "artifactType": "model-artifact",
                        "customProperties": {**self.props, UPLOADED_LAYERS: string_value(value)},
                    },
                )
            except RegistryError as exc:
                log.warning(
                    "could not record the pushed layer %s on ModelArtifact %s: %s",
                    descriptor.get("digest"),
                    self.artifact_id,
                    exc,
                )
                return
            self.entries = entries
            self.had_journal = True


def _parse_journal(prop: Any) -> list[dict[str, Any]]:  # noqa: ANN401 - a custom property as read
    """The descriptors of an :data:`UPLOADED_LAYERS` property; a malformed one is no journal."""
    raw = prop.get("string_value") if isinstance(prop, dict) else None
    try:
        entries = json.loads(raw) if raw else []
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    return [
        e
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("digest"), str) and isinstance(e.get("size"), int)
    ]


def _without_none(body: dict[str, Any]) -> Json:
    return {k: v for k, v in body.items() if v is not None and v != {}}


def _has_marker(entity: Json) -> bool:
    value = (entity.get("customProperties") or {}).get(INCOMPLETE_MARKER)
    return isinstance(value, dict) and value.get("string_value") == "true"


_CREATE_ONLY = frozenset({"name"})
"""ModelArtifact fields of the create schema that the update schema (PATCH) lacks."""
_MARKER_VALUE = string_value("true")
_MARKER_DONE = string_value("false")


class Registration:
    def __init__(
        self,
        client: RegistryClient,
        intent: str,
        meta: ModelMetadata,
        *,
        model_id: str | None,
        model_version_id: str | None,
        model_artifact_id: str | None,
        author: str | None,
    ) -> None:
        self.client = client
        self.intent = intent
        self.meta = meta
        self.model_id = model_id
        self.model_version_id = model_version_id
        self.model_artifact_id = model_artifact_id
        self.author = author
        self.ids = Ids(intent=intent)
        self._resume_version: Json | None = None
        """The unfinished ModelVersion of an earlier attempt that :meth:`check` found, if any."""
        self._journal: ArtifactLayerJournal | None = None

    # -- pre-checks ----------------------------------------------------------------------

    def check(self) -> None:
        """Every registry-side check; raises :class:`RegistryError`. Creates nothing."""
        self.client.probe()
        if self.intent == "update_artifact":
            assert self.model_artifact_id is not None
            artifact = self.client.get_model_artifact(self.model_artifact_id)
            if artifact is None:
                raise RegistryError(
                    f"ModelArtifact with ID '{self.model_artifact_id}' not found ({label('model_artifact_id')})",
                    404,
                )
            self.ids.model_artifact_id = self.model_artifact_id
            self.ids.registered_model_id = self.model_id
            self.ids.model_version_id = self.model_version_id
            self.ids.previous_state = artifact.get("state")
            self.ids.previous_uri = artifact.get("uri")
            return
        if self.intent == "create_model":
            name = self.meta.registered_model.name
            if not name:
                raise RegistryError("intent create_model: metadata key RegisteredModel.name is required")
            existing = self.client.find_registered_model(name)
            if existing is not None:
                if not _has_marker(existing):
                    raise RegistryError(
                        f"Cannot create model: RegisteredModel with name '{name}' already exists "
                        f"(ID: {existing['id']}). Use the 'create_version' intent to add a version.",
                        409,
                    )
                self._resume_version = self._check_resumable_versions(existing)
                self.ids.registered_model_id = str(existing["id"])
                self.ids.resumed = True
            return
        # create_version
        assert self.model_id is not None
        model = self.client.get_registered_model(self.model_id)
        if model is None:
            raise RegistryError(
                f"Cannot create version: RegisteredModel with ID '{self.model_id}' not found. "
                "Use the 'create_model' intent to create it.",
                404,
            )
        version_name = self.meta.model_version.name
        if not version_name:
            raise RegistryError("intent create_version: metadata key ModelVersion.name is required")
        self.ids.registered_model_id = str(model["id"])
        self._model_name = str(model["name"])
        version = self.client.find_model_version(version_name, self.model_id)
        if version is not None:
            if not _has_marker(version):
                raise RegistryError(
                    f"Cannot create version: ModelVersion with name '{version_name}' already exists under "
                    f"RegisteredModel '{model['name']}' (ID: {self.model_id}). Use the 'update_artifact' intent "
                    "to replace its artifact.",
                    409,
                )
            self.ids.resumed = True
            self._resume_version = version

    def _check_resumable_versions(self, model: Json) -> Json | None:
        """The unfinished version to resume under an unfinished model; raises if the model has any other."""
        wanted = self.meta.model_version.name or DEFAULT_VERSION_NAME
        resume: Json | None = None
        for version in self.client.list_versions(str(model["id"])):
            if version.get("name") != wanted or not _has_marker(version):
                raise RegistryError(
                    f"Cannot create model: RegisteredModel with name '{model['name']}' already exists "
                    f"(ID: {model['id']}) with version '{version.get('name')}'. Use the 'create_version' intent.",
                    409,
                )
            resume = version
        return resume

    # -- entity creation (before the transfer) --------------------------------------------

    def start(self, artifact_uri: str) -> Ids:
        """Create or mark the entities; the artifact ends up ``PENDING``."""
        if self.intent == "update_artifact":
            assert self.ids.model_artifact_id is not None
            self.client.update_model_artifact(
                self.ids.model_artifact_id, {"artifactType": "model-artifact", "state": "PENDING"}
            )
            log.info("ModelArtifact %s marked PENDING", self.ids.model_artifact_id)
            return self.ids
        rm = self.meta.registered_model
        if self.intent == "create_model":
            assert rm.name is not None
            model_name = rm.name
            if self.ids.registered_model_id is None:
                created = self.client.create_registered_model(
                    _without_none(
                        {
                            "name": rm.name,
                            "description": rm.description,
                            "owner": rm.owner,
                            "state": "LIVE",
                            "customProperties": {
                                **typed_properties(rm.custom_properties),
                                INCOMPLETE_MARKER: _MARKER_VALUE,
                            },
                        }
                    )
                )
                self.ids.registered_model_id = str(created["id"])
                log.info("created RegisteredModel %s (%s)", created["id"], rm.name)
            else:
                log.info("resuming unfinished RegisteredModel %s (%s)", self.ids.registered_model_id, rm.name)
            self.ids.marked.append(("registered_model", self.ids.registered_model_id))
        else:
            model_name = self._model_name
        model_id = self.ids.registered_model_id
        assert model_id is not None
        mv = self.meta.model_version
        version_name = mv.name or DEFAULT_VERSION_NAME
        # check() found the unfinished version of an earlier attempt, or there is none
        version = self._resume_version
        if version is None:
            version = self.client.create_model_version(
                _without_none(
                    {
                        "name": version_name,
                        "registeredModelId": model_id,
                        "description": mv.description,
                        "author": mv.author or self.author,
                        "state": "LIVE",
                        "customProperties": {
                            **typed_properties(mv.custom_properties),
                            INCOMPLETE_MARKER: _MARKER_VALUE,
                        },
                    }
                )
            )
            log.info("created ModelVersion %s (%s)", version["id"], version_name)
        else:
            log.info("resuming unfinished ModelVersion %s (%s)", version["id"], version_name)
        self.ids.model_version_id = str(version["id"])
        self.ids.marked.append(("model_version", self.ids.model_version_id))
        ma = self.meta.model_artifact
        body = _without_none(
            {
                "artifactType": "model-artifact",
                "name": ma.name or model_name,
                "description": ma.description,
                "uri": artifact_uri,
                "state": "PENDING",
                "modelFormatName": ma.model_format_name,
                "modelFormatVersion": ma.model_format_version,
                "storageKey": ma.storage_key,
                "storagePath": ma.storage_path,
                "serviceAccountName": ma.service_account_name,
                "modelSourceKind": ma.model_source_kind,
                "modelSourceClass": ma.model_source_class,
                "modelSourceGroup": ma.model_source_group,
                "modelSourceId": ma.model_source_id,
                "modelSourceName": ma.model_source_name,
                "customProperties": typed_properties(ma.custom_properties),
            }
        )
        existing = self._artifact_of(version) if self._resume_version is not None else None
        if existing is not None:
            artifact = existing
            # the update schema has no name (the server rejects unknown fields): the artifact keeps its own
            update = {k: v for k, v in body.items() if k not in _CREATE_ONLY}
            journal = (artifact.get("customProperties") or {}).get(UPLOADED_LAYERS)
            if "customProperties" in update and journal is not None:  # the PATCH replaces them all
                update["customProperties"] = {**update["customProperties"], UPLOADED_LAYERS: journal}
            self.client.update_model_artifact(str(artifact["id"]), update)
        else:
            artifact = self.client.create_version_artifact(self.ids.model_version_id, body)
            props = {
                k: v
                for k, v in (version.get("customProperties") or {}).items()
                if k not in (INCOMPLETE_MARKER, ARTIFACT_OF_UNFINISHED)
            }
            self.client.update_model_version(
                self.ids.model_version_id,
                {
                    "customProperties": {
                        **props,
                        INCOMPLETE_MARKER: _MARKER_VALUE,
                        ARTIFACT_OF_UNFINISHED: string_value(str(artifact["id"])),
                    }
                },
            )
        self.ids.model_artifact_id = str(artifact["id"])
        log.info("ModelArtifact %s is PENDING", self.ids.model_artifact_id)
        return self.ids

    def _artifact_of(self, version: Json) -> Json | None:
        """The model artifact an earlier attempt created under the unfinished ``version``."""
        listed = self.client.version_artifacts(str(version["id"]))
        if listed is not None:
            return next((a for a in listed if a.get("artifactType") == "model-artifact"), None)
        recorded = ((version.get("customProperties") or {}).get(ARTIFACT_OF_UNFINISHED) or {}).get("string_value")
        return self.client.get_model_artifact(recorded) if recorded else None

    # -- outcome -------------------------------------------------------------------------

    def layer_journal(self) -> ArtifactLayerJournal | None:
        """The journal of the artifact :meth:`start` made ``PENDING`` (``None`` if unreadable)."""
        assert self.ids.model_artifact_id is not None
        try:
            self._journal = ArtifactLayerJournal(self.client, self.ids.model_artifact_id)
        except RegistryError as exc:
            log.warning(
                "cannot read ModelArtifact %s for layers of earlier attempts: %s", self.ids.model_artifact_id, exc
            )
            return None
        return self._journal

    def complete(self, artifact_uri: str) -> None:
        assert self.ids.model_artifact_id is not None
        body: Json = {"artifactType": "model-artifact", "state": "LIVE", "uri": artifact_uri}
        journal = self._journal
        if journal is not None and journal.had_journal:
            body["customProperties"] = journal.props
        after = self.client.update_model_artifact(self.ids.model_artifact_id, body)
        if UPLOADED_LAYERS in (after.get("customProperties") or {}) and journal is not None:
            # a server that merges custom properties on PATCH keeps the key: empty it instead
            self.client.update_model_artifact(
                self.ids.model_artifact_id,
                {
                    "artifactType": "model-artifact",
                    "customProperties": {**journal.props, UPLOADED_LAYERS: string_value("[]")},
                },
            )
        for kind, entity_id in self.ids.marked:
            self._clear_marker(kind, entity_id)
        log.info("ModelArtifact %s is LIVE: %s", self.ids.model_artifact_id, artifact_uri)

    def _clear_marker(self, kind: str, entity_id: str) -> None:
        if kind == "registered_model":
            entity = self.client.get_registered_model(entity_id)
        else:
            entity = self.client.get_model_version(entity_id)
        if entity is None:
            return
        props = {
            k: v
            for k, v in (entity.get("customProperties") or {}).items()
            if k not in (INCOMPLETE_MARKER, ARTIFACT_OF_UNFINISHED)
        }
        update = self.client.update_registered_model if kind == "registered_model" else self.client.update_model_version
        after = update(entity_id, {"customProperties": props})
        if _has_marker(after):
            # a server that merges custom properties on PATCH keeps the key: flip it instead
            update(entity_id, {"customProperties": {**props, INCOMPLETE_MARKER: _MARKER_DONE}})

    def fail(self) -> None:
        """Best effort: make sure the artifact does not look complete."""
        artifact_id = self.ids.model_artifact_id
        if artifact_id is None:
            return
        if self.intent == "update_artifact" and self.ids.previous_state == "LIVE":
            body: Json = {"artifactType": "model-artifact", "state": "LIVE"}
            if self.ids.previous_uri:
                body["uri"] = self.ids.previous_uri
            what = "restored to its previous LIVE state"
        else:
            body = {"artifactType": "model-artifact", "state": "ABANDONED"}
            what = "marked ABANDONED"
        try:
            self.client.update_model_artifact(artifact_id, body)
            log.warning("ModelArtifact %s %s after the failure", artifact_id, what)
        except RegistryError as exc:
            log.error("could not update ModelArtifact %s after the failure: %s", artifact_id, exc)
