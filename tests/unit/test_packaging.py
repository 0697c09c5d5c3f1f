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
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
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


# -- the Dockerfile's three images -----------------------------------------------------------
# No container engine here: each target's `pip install` is checked against wheels built from
# exactly what the Dockerfile's `build` stage copies, with the same `pip wheel` sources.

IMAGES = {
    "operator": "model-registry-operator",
    "upload": "model-registry-upload",
    "devcluster": "model-registry-devcluster",
}
"""Each Dockerfile target and the distribution it installs."""


@dataclass(frozen=True)
class _Stage:
    name: str
    instructions: list[tuple[str, str]]

    def args(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def _dockerfile() -> dict[str, _Stage]:
    """The stages of the Dockerfile by name: (instruction, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, _Stage] = {}
    current: _Stage | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            name = rest.split()[-1]
            current = stages[name] = _Stage(name, [])
        assert current is not None, line
        current.instructions.append((keyword.upper(), rest.strip()))
    return stages


def _wheel_commands(build: _Stage) -> dict[str, str]:
    """``--wheel-dir`` of each ``pip wheel`` in the build stage -> its source directory."""
    commands: dict[str, str] = {}
    for run in build.args("RUN"):
        for command in run.split("&&"):
            words = command.split()
            if words[:2] != ["pip", "wheel"]:
                continue
            options = words[2:-1]
            wheel_dir = options[options.index("--wheel-dir") + 1]
            commands[wheel_dir] = words[-1]
    return commands


def _installed_from(stage: _Stage) -> tuple[str, str]:
    """(the build stage's wheel directory a target copies, the distribution it pip-installs)."""
    (copy,) = [arg for arg in stage.args("COPY") if arg.startswith("--from=build ")]
    wheel_dir = copy.split()[1]
    (run,) = [arg for arg in stage.args("RUN") if "pip install" in arg]
    install = run.split("&&")[0].split()
    return wheel_dir, install[-1]


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``/src`` of the build stage: what its COPY instructions put there, nothing else."""
    src = tmp_path_factory.mktemp("image-build") / "src"
    for copy in _dockerfile()["build"].args("COPY"):
        *sources, dest = copy.split()
        target = src / dest
        for name in sources:
            path = ROOT / name
            into = target / path.name if dest.endswith("/") else target
            if path.is_dir():
                shutil.copytree(path, into, ignore=_COPY_IGNORE)
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into)
    return src


def test_the_dockerfile_has_the_three_images_and_the_operator_is_the_default() -> None:
    stages = _dockerfile()
    assert set(IMAGES) <= set(stages)
    assert list(stages)[-1] == "operator"  # `docker build .` without --target


@pytest.fixture(scope="module")
def image_wheels(build_context: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, zipfile.ZipFile]:
    """The wheel each target installs, built by the build stage's ``pip wheel`` of it (without
    the dependencies, which come from PyPI or the contract's own wheel)."""
    stages = _dockerfile()
    commands = _wheel_commands(stages["build"])
    out = tmp_path_factory.mktemp("image-wheels")
    built: dict[str, zipfile.ZipFile] = {}
    for wheel_dir, source in commands.items():
        built[wheel_dir] = _pip_wheel(build_context / source, out)
    return {target: built[_installed_from(stages[target])[0]] for target in IMAGES}


@pytest.mark.parametrize("target", IMAGES)
def test_each_image_installs_a_wheel_built_from_what_the_build_stage_copies(
    target: str, image_wheels: dict[str, zipfile.ZipFile]
) -> None:
    _, distribution = _installed_from(_dockerfile()[target])
    assert distribution == IMAGES[target]
    wheel = image_wheels[target]
    message = email.parser.Parser().parsestr(wheel.read(_metadata_name(wheel)).decode())
    assert message["Name"] == distribution


def _pip_wheel(source: Path, out: Path) -> zipfile.ZipFile:
    before = set(out.glob("*.whl"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = set(out.glob("*.whl")) - before
    return zipfile.ZipFile(wheel)


def _metadata_name(wheel: zipfile.ZipFile) -> str:
    (metadata,) = (name for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
    return metadata


def test_the_operator_image_holds_no_dev_cluster_code(image_wheels: dict[str, zipfile.ZipFile]) -> None:
    operator = _dockerfile()["operator"]
    # it copies one wheel directory from the build stage and nothing from any other stage
    assert [arg.split()[:2] for arg in operator.args("COPY")] == [["--from=build", "/wheels/operator"]]
    wheel = image_wheels["operator"]
    assert _tops(wheel) == {"model_registry_operator"}
    assert [name for name in wheel.namelist() if "devcluster" in name] == []
    assert _imports_of(_python_files(wheel), "model_registry_devcluster", "pytest") == []
    assert not [req for req in _requirements(wheel) if req.startswith("model-registry-devcluster")]


def test_the_devcluster_image_runs_the_dev_cluster_with_the_built_control_plane() -> None:
    stages = _dockerfile()
    devcluster = stages["devcluster"]
    (binaries,) = [arg.split() for arg in devcluster.args("COPY") if arg.startswith("--from=k8s-binaries ")]
    (entrypoint,) = devcluster.args("ENTRYPOINT")
    argv = json.loads(entrypoint)
    assert argv[:4] == ["python", "-m", "model_registry_devcluster", "up"]
    assert argv[argv.index("--bin-dir") + 1] == binaries[2]
    # the binaries are hack/build-k8s.sh's (the script `make k8s` runs), all three of them
    (build,) = stages["k8s-binaries"].args("RUN")
    assert "hack/build-k8s.sh" in build
    for binary in ("etcd", "kube-apiserver", "kube-controller-manager"):
        assert f"/{binary} " in build or build.endswith(f"/{binary}")
    assert "65532:65532" in devcluster.args("USER")
