"""The upload program as the operator's suites reach it: its own virtualenv (``make venv``
creates ``.venv-upload`` from upload/pyproject.toml), since its dependencies (boto3, the
model-registry client) and the operator's (kopf, kubernetes) cannot share one environment.

The simulated node runs the upload image as this venv's ``model-registry-upload`` (the image's
entrypoint); suites that check a piece of the program run Python in it (:func:`run_python`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_ENV = "MRO_UPLOAD_VENV"


def upload_venv() -> Path:
    venv = Path(os.environ.get(VENV_ENV) or REPO / ".venv-upload")
    if not (venv / "bin" / "model-registry-upload").is_file():
        pytest.fail(f"the upload program's virtualenv {venv} is missing: run `make venv`")
    return venv


def upload_entrypoint() -> Path:
    """``model-registry-upload``: the upload image's ENTRYPOINT."""
    return upload_venv() / "bin" / "model-registry-upload"


def run_python(code: str, *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Run ``code`` (``sys.argv[1:]`` = ``args``) with the upload venv's Python; its stdout.
    A failure shows its stderr."""
    proc = subprocess.run(
        [str(upload_venv() / "bin" / "python"), "-c", code, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"the upload program's Python exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def popen_python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``code`` started with the upload venv's Python, stdin / stdout / stderr piped."""
    return subprocess.Popen(
        [str(upload_venv() / "bin" / "python"), "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
