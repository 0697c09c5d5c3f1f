"""The input of ``model-registry-operator render -f FILE``: read, parsed and checked, every problem
a :class:`BadInput` naming the document (and the field) instead of a traceback.

Only YAML's safe subset is read (no tags constructing Python objects); a document is a
ModelRegistry or a ModelUploadJob, a ``kind: List`` of them (as ``kubectl`` and kustomize write),
or another Kubernetes object, which is skipped (samples ship the database with the registry).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..api import modeluploadjob as upload_api
from ..names import GROUP, MODEL_UPLOAD_JOB_KIND
from ..names import MODEL_REGISTRY_KIND as KIND
from .engine import RenderError
from .offline import OfflineCluster, render_documents
from .values import value_problems

KINDS = (KIND, MODEL_UPLOAD_JOB_KIND)
# Deeper than any CR; PyYAML's parser recurses per level, so this is checked before it parses.
MAX_DEPTH = 100
# Values a document may expand to through aliases.
MAX_NODES = 100_000
# Read at most this much: a CR is a few KB.
MAX_BYTES = 16 * 1024 * 1024


class BadInput(Exception):
    """The input cannot be rendered; the message says where and why."""


def _read(file: str) -> tuple[str, str]:
    """(text, the name messages use) of ``file`` ('-': standard input)."""
    label = "standard input" if file == "-" else file
    try:
        if file == "-":
            data = sys.stdin.buffer.read(MAX_BYTES + 1)
        else:
            with Path(file).open("rb") as stream:
                data = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise BadInput(f"cannot read {label}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise BadInput(f"{label} is larger than {MAX_BYTES // (1024 * 1024)} MiB; not a custom resource")
    try:
        return data.decode("utf-8"), label
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadInput(
            f"{label} is not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} (offset {exc.start})"
        ) from None


def _check_shape(text: str, label: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH (before PyYAML's recursive parser meets it) and aliases
    that expand to more than MAX_NODES nodes (a few lines of anchors can stand for billions)."""
    anchors: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, nodes so far) of each open collection
    total = 0

    def done(anchor: str | None, size: int) -> None:
        nonlocal total
        if anchor:
            anchors[anchor] = size
        if open_nodes:
            parent_anchor, count = open_nodes[-1]
            open_nodes[-1] = (parent_anchor, count + size)
        else:
            total += size
        if total + sum(count for _, count in open_nodes) > MAX_NODES:
            raise BadInput(f"{label}: expands to more than {MAX_NODES} values (YAML aliases); not a custom resource")

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(open_nodes) >= MAX_DEPTH:
                mark = event.start_mark
                where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
                raise BadInput(f"{label}: nested deeper than {MAX_DEPTH} levels{where}; not a custom resource")
            open_nodes.append((event.anchor, 1))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, size = open_nodes.pop()
            done(anchor, size)
        elif isinstance(event, yaml.ScalarEvent):
            done(event.anchor, 1)
        elif isinstance(event, yaml.AliasEvent):
            done(None, anchors.get(str(event.anchor), 1))


def _documents(text: str, label: str) -> list[Any]:
    docs: list[Any] = []
    try:
        _check_shape(text, label)
        for doc in yaml.safe_load_all(text):
            docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid"
        context = exc.context_mark
        if exc.context and exc.problem and context is not None:  # where the broken node starts
            problem += f" ({exc.context} at line {context.line + 1}, column {context.column + 1})"
        raise BadInput(f"{label}: document {len(docs) + 1} is not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{label}: document {len(docs) + 1} is not valid YAML: {exc}") from None
    except RecursionError:
        raise BadInput(f"{label}: document {len(docs) + 1} is nested too deeply") from None
    return docs


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _check_metadata(doc: dict[str, Any], where: str) -> None:
    if "metadata" not in doc:
        return
    meta = doc["metadata"]
    if not isinstance(meta, dict):
        raise BadInput(f"{where}: metadata must be an object, not {_type(meta)}")
    for key in ("name", "namespace"):
        if key in meta and not isinstance(meta[key], str):
            raise BadInput(f"{where}: metadata.{key} must be a string, not {_type(meta[key])}")
    for key in ("labels", "annotations"):
        if key not in meta or meta[key] is None:
            continue
        if not isinstance(meta[key], dict):
            raise BadInput(f"{where}: metadata.{key} must be an object, not {_type(meta[key])}")
        for item, value in meta[key].items():
            if not isinstance(item, str) or not isinstance(value, str):
                raise BadInput(f"{where}: metadata.{key}.{item}: keys and values must be strings")


def _items(docs: list[Any], label: str) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """The CRs to render, each with where it is; and what was skipped."""
    found: list[tuple[str, dict[str, Any]]] = []
    skipped: list[str] = []

    def one(doc: Any, where: str) -> None:
        if not isinstance(doc, dict):
            raise BadInput(f"{where} is {_type(doc)}, not an object (a {KIND} or {MODEL_UPLOAD_JOB_KIND})")
        kind = doc.get("kind")
        if not isinstance(kind, str) or not kind:
            raise BadInput(f"{where}: kind is missing (a {KIND} or {MODEL_UPLOAD_JOB_KIND} is expected)")
        if kind == "List":
            items = doc.get("items")
            if not isinstance(items, list):
                raise BadInput(f"{where}: a List's items must be a list, not {_type(items)}")
            for index, item in enumerate(items):
                one(item, f"{where} item {index + 1}")
            return
        _check_metadata(doc, f"{where} ({kind})")
        api_version = doc.get("apiVersion")
        if kind in KINDS:
            found.append((f"{where} ({kind})", doc))
        elif isinstance(api_version, str) and api_version.startswith(f"{GROUP}/"):
            raise BadInput(f"{where}: kind {kind!r} of {api_version} is neither {KIND} nor {MODEL_UPLOAD_JOB_KIND}")
        else:
            skipped.append(f"{where} ({kind})")

    for index, doc in enumerate(docs):
        if doc is not None:  # an empty document ("---" twice)
            one(doc, f"{label}: document {index + 1}")
    return found, skipped


def _check_renders(
    where: str, doc: dict[str, Any], registries: list[dict[str, Any]], cluster: OfflineCluster | None
) -> None:
    """Render one CR alone (an upload with the file's registries), to say which one fails and why."""
    try:
        if doc["kind"] == MODEL_UPLOAD_JOB_KIND:
            upload_api.ModelUploadJobSpec.model_validate(doc.get("spec") or {})
        render_documents([doc] if doc["kind"] == KIND else [*registries, doc], cluster=cluster)
    except ValidationError as exc:  # the fields and what is wrong with them, not the values
        raise BadInput(f"{where}: " + "; ".join(_field_errors(exc))) from None
    except RenderError:
        problems = value_problems(doc.get("spec"))
        raise BadInput(f"{where}: " + ("; ".join(problems) or "cannot be rendered")) from None
    except RecursionError:
        raise BadInput(f"{where}: nested too deeply") from None
    except ValueError as exc:  # the spec's validation problems, each naming its field
        message = str(exc)
        prefix = f"{doc['kind']} "
        raise BadInput(f"{where}: {message.removeprefix(prefix)}") from None
    except Exception as exc:  # an input nobody foresaw: still no traceback
        raise BadInput(f"{where}: cannot be rendered: {type(exc).__name__}: {exc}") from None


def _field_errors(exc: ValidationError) -> list[str]:
    return [
        "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]) + f": {err['msg']}"
        for err in exc.errors()
    ]


def render_input(
    file: str, cluster: OfflineCluster | None = None, notes: list[str] | None = None
) -> list[dict[str, Any]]:
    """Every object the operator would apply for the CRs in ``file`` on ``cluster`` (plain
    Kubernetes by default); what it would leave out there is added to ``notes``."""
    text, label = _read(file)
    found, skipped = _items(_documents(text, label), label)
    if not found:
        kinds = sorted({where.rpartition(" (")[2].rstrip(")") for where in skipped})
        what = f" (only {', '.join(kinds)})" if kinds else ""
        raise BadInput(f"no {KIND} or {MODEL_UPLOAD_JOB_KIND} in {label}{what}")
    registries = [doc for _, doc in found if doc["kind"] == KIND]
    for where, doc in found:
        _check_renders(where, doc, registries, cluster)
    return render_documents([doc for _, doc in found], cluster=cluster, notes=notes)
