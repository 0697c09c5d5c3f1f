"""Which value of a spec a template cannot carry: named after a render failed, for the condition."""

from __future__ import annotations

import yaml

from .engine import environment


def value_problems(spec: object, path: str = "spec") -> list[str]:
    """Fields whose string value a template cannot carry: ``path: why``, for a render that failed.

    Every value reaches a template through the ``quote`` filter; one that does not come back from
    the YAML it produced (e.g. an escape the YAML parser refuses) is named here.
    """
    quote = environment().filters["quote"]
    problems: list[str] = []

    def walk(value: object, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")
        elif isinstance(value, str):
            try:
                ok = yaml.safe_load(quote(value)) == value
                why = "its quoted form does not read back as the same value"
            except yaml.YAMLError as exc:
                ok = False
                why = str(getattr(exc, "problem", None) or type(exc).__name__)
            if not ok:
                problems.append(f"{where}: the value cannot be written into a generated object ({why})")

    walk(spec, path)
    return problems
