"""The Jinja environment: strict, with a `toyaml` filter, loading templates from the package.

Templates insert values only through `quote` (a JSON string, valid YAML) or `toyaml`, so no
value can add a key, an item or a document; `no_expansion` doubles `$` in container
arguments (the kubelet expands `$(VAR)`). tests/unit/test_templates.py holds them to it.

Every rendered document is parsed and checked for apiVersion, kind and metadata.name, so a
template mistake fails loudly in the render tests rather than at apply time.
"""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import Any

import jinja2
import yaml

from .. import yamljson
from ..names import RETAIN_ANNOTATION
from .escaping import no_expansion

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


# libyaml's loader when PyYAML has it: rendering is on the reconcile hot path.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class RenderError(Exception):
    """A template produced something that is not a Kubernetes object."""


def _toyaml(value: Any, indent: int = 0) -> str:
    """Structured values as YAML, indented to sit under the current key."""
    if not value and isinstance(value, (dict, list)):
        return json.dumps(value)
    text = yaml.dump(value, Dumper=_DUMPER, default_flow_style=False, sort_keys=False).rstrip("\n")
    if indent:
        pad = " " * indent
        text = "\n".join(pad + line if line else line for line in text.splitlines()).lstrip()
    return text


def _b64(value: Any) -> str:
    return base64.b64encode(str(value).encode()).decode()


def _tojson_str(value: Any) -> str:
    """A scalar as a double-quoted YAML string."""
    return yamljson.dumps(str(value))


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - YAML, not HTML
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the package; no stat() per render
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["toyaml"] = _toyaml
    env.filters["quote"] = _tojson_str
    env.filters["b64"] = _b64
    env.filters["no_expansion"] = no_expansion
    env.globals["RETAIN_ANNOTATION"] = RETAIN_ANNOTATION
    return env


def render_template(name: str, context: dict[str, Any]) -> list[dict[str, Any]]:
    """Render one template into its Kubernetes objects (a template may hold several or none)."""
    text = environment().get_template(name).render(**context)
    try:
        docs = [d for d in yaml.load_all(text, Loader=_LOADER) if d is not None]
    except yaml.YAMLError as exc:
        raise RenderError(f"{name}: rendered text is not YAML: {exc}") from exc
    for doc in docs:
        if not isinstance(doc, dict):
            raise RenderError(f"{name}: rendered a {type(doc).__name__}, not an object")
        for field in ("apiVersion", "kind"):
            if not doc.get(field):
                raise RenderError(f"{name}: rendered object has no {field}")
        if not (doc.get("metadata") or {}).get("name"):
            raise RenderError(f"{name}: rendered {doc['kind']} has no metadata.name")
    return docs


def render_fragment(name: str, context: dict[str, Any]) -> Any:
    """Render a template holding one piece of an object (a container, a list of volumes)."""
    text = environment().get_template(name).render(**context)
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (CSafeLoader / SafeLoader)
    except yaml.YAMLError as exc:
        raise RenderError(f"{name}: rendered text is not YAML: {exc}") from exc
