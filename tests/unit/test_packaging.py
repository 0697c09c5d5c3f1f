"""Three programs, three distributions (and the contract two of them share), each wheel holding
only its own code and requiring only its own dependencies: the operator (no dev cluster, no
upload program, no boto3), the upload program (no kopf, no kubernetes client), the dev cluster
(a development tool: not in the operator's wheel, never imported by it), and the contract
(standard library only).

The wheels are built with pip from copies of their sources, the operator's from exactly what the
image build copies (``pyproject.toml``, ``README.md``, ``operator/``): an in-tree build would
also pack whatever a stale ``build/lib`` still holds.
"""

from __future__ import annotations

import ast
import email.parser
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")


def _build_wheel(sources: list[Path], base: Path, dest: Path) -> zipfile.ZipFile:
    """``pip wheel --no-deps`` of a copy of ``sources`` (taken relative to ``base``)."""
    src = dest / "src"
    for path in sources:
        target = src / path.relative_to(base)
        if path.is_dir():
            shutil.copytree(path, target, ignore=_COPY_IGNORE)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    out = dest / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


def _imports(source: str, filename: str) -> Iterator[str]:
    """Absolute module names a Python file imports (anywhere, also inside functions)."""
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def _python_files(wheel: zipfile.ZipFile) -> dict[str, str]:
    return {name: wheel.read(name).decode() for name in wheel.namelist() if name.endswith(".py")}


def _imports_of(files: dict[str, str], *tops: str) -> list[str]:
    return sorted(
        f"{name}: {module}"
        for name, source in files.items()
        for module in _imports(source, name)
        if module.split(".")[0] in tops
    )


@pytest.fixture(scope="module")
def operator_wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    sources = [ROOT / "pyproject.toml", ROOT / "README.md", ROOT / "operator"]
    return _build_wheel(sources, ROOT, tmp_path_factory.mktemp("operator-wheel"))


def test_operator_wheel_holds_no_dev_cluster(operator_wheel: zipfile.ZipFile) -> None:
    names = operator_wheel.namelist()
    assert "model_registry_operator/__init__.py" in names
    assert [name for name in names if "devcluster" in name] == []
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"model_registry_operator"}


def test_operator_wheel_imports_neither_pytest_nor_the_dev_cluster(operator_wheel: zipfile.ZipFile) -> None:
    files = _python_files(operator_wheel)
    assert "model_registry_operator/cli.py" in files
    assert _imports_of(files, "pytest", "_pytest", "model_registry_devcluster") == []


def test_operator_requires_neither_pytest_nor_the_dev_cluster(operator_wheel: zipfile.ZipFile) -> None:
    (metadata,) = (name for name in operator_wheel.namelist() if name.endswith(".dist-info/METADATA"))
    message = email.parser.Parser().parsestr(operator_wheel.read(metadata).decode())
    unconditional = [req for req in message.get_all("Requires-Dist") or [] if "extra ==" not in req]
    assert unconditional, "the operator's own dependencies are missing from its metadata"
    assert [req for req in unconditional if req.startswith(("pytest", "model-registry-devcluster"))] == []


def test_operator_sources_never_import_the_dev_cluster() -> None:
    """The same scan on the working tree, so a new module is caught before any wheel is built."""
    files = {str(path): path.read_text() for path in (ROOT / "operator").rglob("*.py")}
    assert len(files) > 20
    assert _imports_of(files, "pytest", "_pytest", "model_registry_devcluster") == []


def test_dev_cluster_is_its_own_distribution_without_pytest(tmp_path: Path) -> None:
    base = ROOT / "tools" / "devcluster"
    sources = [base / "pyproject.toml", base / "README.md", base / "model_registry_devcluster"]
    wheel = _build_wheel(sources, base, tmp_path)
    names = wheel.namelist()
    for module in ("__init__", "__main__", "controlplane", "simnode", "process_runner", "testing"):
        assert f"model_registry_devcluster/{module}.py" in names
    assert "model_registry_devcluster/py.typed" in names
    assert any(name.startswith("model_registry_devcluster-") and name.endswith(".dist-info/METADATA") for name in names)
    # A development tool, not a pytest plugin: the fixtures live in tests/conftest.py.
    assert _imports_of(_python_files(wheel), "pytest", "_pytest", "model_registry_operator") == []


def _requirements(wheel: zipfile.ZipFile) -> list[str]:
    """The wheel's unconditional Requires-Dist entries."""
    (metadata,) = (name for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
    message = email.parser.Parser().parsestr(wheel.read(metadata).decode())
    return [req for req in message.get_all("Requires-Dist") or [] if "extra ==" not in req]


def _tops(wheel: zipfile.ZipFile) -> set[str]:
    return {name.split("/")[0] for name in wheel.namelist() if not name.split("/")[0].endswith(".dist-info")}


@pytest.fixture(scope="module")
def upload_wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    base = ROOT / "upload"
    return _build_wheel([base / "pyproject.toml", base / "src"], base, tmp_path_factory.mktemp("upload-wheel"))


def test_the_operator_wheel_carries_no_upload_program(operator_wheel: zipfile.ZipFile) -> None:
    assert [name for name in operator_wheel.namelist() if "upload" in name.split("/")[0]] == []
    assert _imports_of(_python_files(operator_wheel), "model_registry_upload", "boto3", "botocore") == []
    assert "model-registry-upload-contract==0.1.0" in _requirements(operator_wheel)


def test_the_upload_program_is_its_own_distribution_without_kopf_or_kubernetes(upload_wheel: zipfile.ZipFile) -> None:
    assert _tops(upload_wheel) == {"model_registry_upload"}
    files = _python_files(upload_wheel)
    for module in ("cli", "config", "registration", "status_report", "destinations/oci", "sources/s3"):
        assert f"model_registry_upload/{module}.py" in files
    assert _imports_of(files, "kopf", "kubernetes", "model_registry_operator", "model_registry_devcluster") == []
    names = {re.split(r"[\s;\[=<>!~]", req, maxsplit=1)[0] for req in _requirements(upload_wheel)}
    assert {"boto3", "model-registry", "model-registry-upload-contract"} <= names
    assert not names & {"kopf", "kubernetes", "model-registry-operator"}
    (entry_points,) = (name for name in upload_wheel.namelist() if name.endswith(".dist-info/entry_points.txt"))
    assert "model-registry-upload = model_registry_upload.cli:main" in upload_wheel.read(entry_points).decode()


def test_the_contract_needs_nothing_but_the_standard_library(tmp_path: Path) -> None:
    base = ROOT / "upload" / "contract"
    wheel = _build_wheel([base / "pyproject.toml", base / "src"], base, tmp_path)
    assert _tops(wheel) == {"model_registry_upload_contract"}
    assert _requirements(wheel) == []
    files = _python_files(wheel)
    imported = {module.split(".")[0] for name, source in files.items() for module in _imports(source, name)}
    assert imported
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
