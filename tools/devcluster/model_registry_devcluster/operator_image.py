"""The operator's image on the simulated node, as ``config/overlays/devcluster`` deploys it.

The overlay swaps the image of ``config/default``'s Deployment for :data:`OPERATOR_IMAGE`, a
``sim-exec`` image: the node runs the container as a local process (see :mod:`.process_runner`)
with the Pod's env, its ServiceAccount token, CA and namespace at
``/var/run/secrets/kubernetes.io/serviceaccount`` and ``KUBERNETES_SERVICE_HOST`` / ``_PORT``, so
the operator finds its in-cluster configuration as in a real Pod. What the image would hold is
the operator's console script; :func:`provide_operator_image` declares it as the image's
``ENTRYPOINT`` (the Dockerfile's ``ENTRYPOINT ["model-registry-operator"]``, ``CMD ["run"]``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .process_runner import ProcessRunner

OPERATOR_IMAGE = "localhost/sim-exec/model-registry-operator"
"""The repository ``config/overlays/devcluster`` names (every tag of it)."""


def operator_entrypoint() -> Path:
    """``model-registry-operator`` of the running virtualenv (``make venv`` installs both packages there)."""
    return Path(sys.executable).parent / "model-registry-operator"


def provide_operator_image(runner: ProcessRunner, entrypoint: Path | None = None) -> Path:
    """Declare :data:`OPERATOR_IMAGE`'s ``ENTRYPOINT`` / ``CMD``; the entrypoint, which must exist."""
    script = entrypoint if entrypoint is not None else operator_entrypoint()
    if not script.is_file():
        raise FileNotFoundError(f"{script} not found: the operator is not installed in this virtualenv (make venv)")
    runner.provide_image_entrypoint(OPERATOR_IMAGE, [str(script)], ["run"])
    return script
