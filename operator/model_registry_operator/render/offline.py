"""Offline rendering for ``model-registry-operator render -f CR.yaml``: no cluster needed.

Secret values are not read; placeholders stand in for them, so the output is safe to share.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..api import modeluploadjob as upload_api
from ..api.validation import parse_spec
from ..names import MODEL_REGISTRY_KIND as KIND
from ..names import MODEL_UPLOAD_JOB_KIND
from ..platform.capabilities import PLAIN_KUBERNETES
from ..settings import OperatorSettings
from .database import DatabaseSecrets
from .defaults import apply_runtime_defaults
from .modelregistry import RegistryRef, RenderInputs, render_model_registry
from .modeluploadjob import (
    UploadJobRef,
    address_endpoint,
    registry_endpoint,
    render_model_upload_job,
    token_problem,
)

PLACEHOLDER_PASSWORD = "<from-secret>"  # noqa: S105 - a placeholder, not a credential


def render_documents(docs: list[Any], settings: OperatorSettings | None = None) -> list[dict[str, Any]]:
    settings = settings or OperatorSettings()
    objects: list[dict[str, Any]] = []
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            continue
        meta = doc.get("metadata") or {}
        name = meta.get("name") or "model-registry"
        spec, problems = parse_spec(doc.get("spec"))
        if spec is None:
            raise ValueError(f"{KIND} {name}: " + "; ".join(str(p) for p in problems))
        effective = apply_runtime_defaults(spec, settings, name)
        registry = RegistryRef(name, meta.get("namespace") or "default", "<uid>", dict(meta.get("annotations") or {}))
        inputs = RenderInputs(
            DatabaseSecrets(password=PLACEHOLDER_PASSWORD, ssl_password=PLACEHOLDER_PASSWORD),
            generated_postgres_password=PLACEHOLDER_PASSWORD,
        )
        objects.extend(render_model_registry(registry, effective, settings, PLAIN_KUBERNETES, inputs))
    registries = {
        (doc.get("metadata") or {}).get("name"): doc.get("spec") or {}
        for doc in docs
        if isinstance(doc, dict) and doc.get("kind") == KIND
    }
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == MODEL_UPLOAD_JOB_KIND:
            objects.extend(_render_upload(doc, registries, settings))
    return objects


def _render_upload(doc: dict[str, Any], registries: dict[Any, Any], settings: OperatorSettings) -> list[dict[str, Any]]:
    """A ModelUploadJob's ConfigMap and Job; a registry by name resolves against the same input."""
    meta = doc.get("metadata") or {}
    name = meta.get("name") or "model-upload"
    namespace = meta.get("namespace") or "default"
    raw = doc.get("spec") or {}
    try:
        spec = upload_api.ModelUploadJobSpec.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{MODEL_UPLOAD_JOB_KIND} {name}: {exc}") from None
    target = spec.registry
    if target.address is not None:
        endpoint = address_endpoint(target)
    else:
        endpoint = registry_endpoint(
            str(target.name),
            namespace,
            registries.get(target.name) or {},
            allow_token_over_http=bool(target.allow_token_over_http),
        )
        problem = token_problem(target, endpoint)
        if problem:
            raise ValueError(f"{MODEL_UPLOAD_JOB_KIND} {name}: {problem}")
    ref = UploadJobRef(name, namespace, "<uid>")
    return render_model_upload_job(ref, spec, raw, endpoint, settings.upload_job_image)


def render_file(path: Path) -> list[dict[str, Any]]:
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    docs = list(yaml.safe_load_all(text))
    items: list[Any] = []
    for doc in docs:  # a kind: List, as kustomize samples use, holds items
        if isinstance(doc, dict) and doc.get("kind") == "List":
            items.extend(doc.get("items") or [])
        else:
            items.append(doc)
    objects = render_documents(items)
    if not objects:
        raise ValueError(f"no {KIND} or {MODEL_UPLOAD_JOB_KIND} found in {path}")
    return objects
