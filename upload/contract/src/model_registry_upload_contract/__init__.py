"""The contract between the operator and the upload program, defined once for both.

The operator renders a Job whose container runs :data:`PROGRAM` (the upload image's
entrypoint), configured only through ``MODEL_SYNC_*`` variables (:func:`env_name`); the program
writes its outcome to the termination message (:data:`DEFAULT_TERMINATION_PATH`, JSON of
:class:`Result` keys on success, the error text on failure), exits with one of the ``EXIT_*``
codes and merge-patches ``status.progress`` of its ModelUploadJob (:data:`JOB_NAME_ENV`,
:data:`JOB_NAMESPACE_ENV`, :data:`STATUS_FIELD_MANAGER`). Standard library only: the operator
(kopf, kubernetes) and the upload program (boto3, the model-registry client) have dependency
sets that cannot share one environment, but both import this.
"""

from __future__ import annotations

import json
from typing import Any, Final, TypedDict

PROGRAM: Final = "model-registry-upload"
"""The upload image's entrypoint (console script of the ``model-registry-upload`` distribution)."""

ENV_PREFIX: Final = "MODEL_SYNC_"
"""Every parameter ``--a-b`` of the program is also the variable ``MODEL_SYNC_A_B``."""


def env_name(parameter: str) -> str:
    """``source_aws_bucket`` / ``source-aws-bucket`` -> ``MODEL_SYNC_SOURCE_AWS_BUCKET``."""
    return ENV_PREFIX + parameter.replace("-", "_").upper()


# ------------------------------------------------------------------------------ exit codes
EXIT_OK: Final = 0
EXIT_TRANSFER: Final = 1
"""The transfer (download, push, upload) or an unexpected step failed."""
EXIT_CONFIG: Final = 2
"""Parameters or credential files are missing or invalid; nothing was contacted."""
EXIT_REGISTRY: Final = 3
"""A model registry pre-check or call failed (name taken, unknown id, unreachable...)."""

# --------------------------------------------------------------------- termination message
DEFAULT_TERMINATION_PATH: Final = "/dev/termination-log"
TERMINATION_PATH_ENV: Final = "TERMINATION_MESSAGE_PATH"
MAX_TERMINATION_BYTES: Final = 4096
"""The kubelet keeps at most 4096 bytes of a termination message."""


class Entity(TypedDict, total=False):
    id: str
    name: str
    uri: str


class Result(TypedDict, total=False):
    """The success termination message (JSON)."""

    intent: str
    RegisteredModel: Entity
    ModelVersion: Entity
    ModelArtifact: Entity
    uri: str
    digest: str
    bytes: int
    files: int


def parse_result(message: str) -> dict[str, Any] | None:
    """The success JSON of a termination message, or None (a failure message is plain text)."""
    try:
        data = json.loads(message)
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------------ progress status
GROUP: Final = "modelregistry.opendatahub.io"
VERSION: Final = "v1alpha1"
PLURAL: Final = "modeluploadjobs"
"""The ModelUploadJob resource whose ``status.progress`` the program patches."""
JOB_NAME_ENV: Final = "MODEL_UPLOAD_JOB_NAME"
JOB_NAMESPACE_ENV: Final = "MODEL_UPLOAD_JOB_NAMESPACE"
STATUS_FIELD_MANAGER: Final = "model-upload"

# ---------------------------------------------------------- custom properties in the registry
INCOMPLETE_MARKER: Final = "modelregistry.opendatahub.io/upload-incomplete"
"""Set (``"true"``) on entities an upload created until it completes."""
UPLOADED_LAYERS: Final = "modelregistry.opendatahub.io/upload-layers"
"""The layer journal of an unfinished OCI artifact (resumed uploads skip what it lists)."""
