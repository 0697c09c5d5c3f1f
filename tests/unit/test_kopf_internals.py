"""kopf's private API is used in kopf_internals.py only, and for the kopf version it was checked against."""

from __future__ import annotations

import ast
from importlib.metadata import version
from pathlib import Path

import model_registry_operator
from model_registry_operator import kopf_internals

PACKAGE = Path(model_registry_operator.__file__).resolve().parent


def _private_uses(path: Path) -> list[str]:
    """Imports of ``kopf._...`` and ``kopf._...`` module paths written out (logger names)."""
    uses = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]
        elif isinstance(node, ast.Attribute):  # kopf._cogs... reached through ``import kopf``
            names = [ast.unparse(node)]
        uses += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {name}" for name in names if name.startswith("kopf._")]
    return uses


def test_only_kopf_internals_touches_kopf_private_modules() -> None:
    others = [p for p in sorted(PACKAGE.rglob("*.py")) if p != Path(kopf_internals.__file__).resolve()]
    found = [use for path in others for use in _private_uses(path)]
    assert not found, "kopf's private API belongs in kopf_internals.py:\n" + "\n".join(found)


def test_the_check_finds_a_private_import() -> None:
    module = PACKAGE / "kopf_internals.py"
    assert _private_uses(module), "kopf_internals.py itself uses kopf._cogs: the check must see it"


def test_installed_kopf_is_the_one_checked() -> None:
    """A kopf upgrade must re-check every item of kopf_internals.py (then update KOPF_VERSION)."""
    assert version("kopf") == kopf_internals.KOPF_VERSION
    assert f"checked against kopf {kopf_internals.KOPF_VERSION}" in (kopf_internals.__doc__ or "")
    pyproject = (PACKAGE.parents[1] / "pyproject.toml").read_text()
    assert f'"kopf=={kopf_internals.KOPF_VERSION}"' in pyproject
