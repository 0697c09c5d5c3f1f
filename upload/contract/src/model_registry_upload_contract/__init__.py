"""The contract between the operator and the upload program, defined once for both.

The operator renders a Job whose container runs :data:`PROGRAM` (the upload image's
entrypoint), configured only through ``MODEL_SYNC_*`` variables: one per :class:`Parameter`,
named by :func:`env_name` (the program's flags are the same names, ``--a-b``); the program
writes its outcome to the termination message (:data:`DEFAULT_TERMINATION_PATH`, JSON of
:class:`Result` keys on success, the error text on failure), exits with one of the ``EXIT_*``
codes and merge-patches ``status.progress`` of its ModelUploadJob (:data:`JOB_NAME_ENV`,
:data:`JOB_NAMESPACE_ENV`, :data:`STATUS_FIELD_MANAGER`). Standard library only: the operator
(kopf, kubernetes) and the upload program (boto3, the model-registry client) have dependency
sets that cannot share one environment, but both import this.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Final, Literal, TypedDict

PROGRAM: Final = "model-registry-upload"
"""The upload image's entrypoint (console script of the ``model-registry-upload`` distribution)."""

ENV_PREFIX: Final = "MODEL_SYNC_"
"""Every parameter ``--a-b`` of the program is also the variable ``MODEL_SYNC_A_B``."""


class Parameter(StrEnum):
    """Every parameter of the upload program, by its snake_case name: the flag is ``--`` plus
    the name in kebab-case, the variable :func:`env_name`. The program defines its help texts,
    defaults, choices and which values are secret; the operator sets the variables it needs."""

    # source
    SOURCE_TYPE = "source_type"
    SOURCE_URI = "source_uri"
    SOURCE_URI_CA_BUNDLE = "source_uri_ca_bundle"
    SOURCE_URI_CREDENTIALS_PATH = "source_uri_credentials_path"
    SOURCE_AWS_BUCKET = "source_aws_bucket"
    SOURCE_AWS_KEY = "source_aws_key"
    SOURCE_AWS_REGION = "source_aws_region"
    SOURCE_AWS_ACCESS_KEY_ID = "source_aws_access_key_id"
    SOURCE_AWS_SECRET_ACCESS_KEY = "source_aws_secret_access_key"  # noqa: S105 - a parameter name
    SOURCE_AWS_SESSION_TOKEN = "source_aws_session_token"  # noqa: S105 - a parameter name
    SOURCE_AWS_ENDPOINT = "source_aws_endpoint"
    SOURCE_AWS_ADDRESSING_STYLE = "source_aws_addressing_style"
    SOURCE_AWS_CA_BUNDLE = "source_aws_ca_bundle"
    SOURCE_S3_CREDENTIALS_PATH = "source_s3_credentials_path"
    SOURCE_OCI_URI = "source_oci_uri"
    SOURCE_OCI_REGISTRY = "source_oci_registry"
    SOURCE_OCI_USERNAME = "source_oci_username"
    SOURCE_OCI_PASSWORD = "source_oci_password"  # noqa: S105 - a parameter name
    SOURCE_OCI_ENABLE_TLS_VERIFY = "source_oci_enable_tls_verify"
    SOURCE_OCI_CA_BUNDLE = "source_oci_ca_bundle"
    SOURCE_OCI_CREDENTIALS_PATH = "source_oci_credentials_path"
    SOURCE_PATH = "source_path"
    # destination
    DESTINATION_TYPE = "destination_type"
    DESTINATION_AWS_BUCKET = "destination_aws_bucket"
    DESTINATION_AWS_KEY = "destination_aws_key"
    DESTINATION_AWS_REGION = "destination_aws_region"
    DESTINATION_AWS_ACCESS_KEY_ID = "destination_aws_access_key_id"
    DESTINATION_AWS_SECRET_ACCESS_KEY = "destination_aws_secret_access_key"  # noqa: S105 - a parameter name
    DESTINATION_AWS_SESSION_TOKEN = "destination_aws_session_token"  # noqa: S105 - a parameter name
    DESTINATION_AWS_ENDPOINT = "destination_aws_endpoint"
    DESTINATION_AWS_ADDRESSING_STYLE = "destination_aws_addressing_style"
    DESTINATION_AWS_CA_BUNDLE = "destination_aws_ca_bundle"
    DESTINATION_S3_CREDENTIALS_PATH = "destination_s3_credentials_path"
    DESTINATION_OCI_URI = "destination_oci_uri"
    DESTINATION_OCI_REGISTRY = "destination_oci_registry"
    DESTINATION_OCI_USERNAME = "destination_oci_username"
    DESTINATION_OCI_PASSWORD = "destination_oci_password"  # noqa: S105 - a parameter name
    DESTINATION_OCI_BASE_IMAGE = "destination_oci_base_image"
    DESTINATION_OCI_ENABLE_TLS_VERIFY = "destination_oci_enable_tls_verify"
    DESTINATION_OCI_PLATFORM = "destination_oci_platform"
    DESTINATION_OCI_CA_BUNDLE = "destination_oci_ca_bundle"
    DESTINATION_OCI_CREDENTIALS_PATH = "destination_oci_credentials_path"
    # what to register
    MODEL_UPLOAD_INTENT = "model_upload_intent"
    MODEL_ID = "model_id"
    MODEL_VERSION_ID = "model_version_id"
    MODEL_ARTIFACT_ID = "model_artifact_id"
    METADATA_CONFIGMAP_PATH = "metadata_configmap_path"
    # the model registry
    REGISTRY_SERVER_ADDRESS = "registry_server_address"
    REGISTRY_PORT = "registry_port"
    REGISTRY_IS_SECURE = "registry_is_secure"
    REGISTRY_AUTHOR = "registry_author"
    REGISTRY_USER_TOKEN = "registry_user_token"  # noqa: S105 - a parameter name
    REGISTRY_USER_TOKEN_ENVVAR = "registry_user_token_envvar"  # noqa: S105 - a parameter name
    REGISTRY_TOKEN_OVER_HTTP = "registry_token_over_http"  # noqa: S105 - a parameter name
    REGISTRY_CUSTOM_CA = "registry_custom_ca"
    REGISTRY_CUSTOM_CA_ENVVAR = "registry_custom_ca_envvar"
    REGISTRY_LOG_LEVEL = "registry_log_level"
    # signing
    SIGN = "sign"
    SIGNING_IDENTITY_TOKEN_PATH = "signing_identity_token_path"  # noqa: S105 - a parameter name
    # the transfer
    STORAGE_PATH = "storage_path"
    PARALLELISM = "parallelism"
    PART_SIZE = "part_size"
    PROGRESS_INTERVAL = "progress_interval"
    TIMEOUT = "timeout"


Side = Literal["source", "destination"]
SIDES: Final[tuple[Side, ...]] = ("source", "destination")


def parameter(name: str) -> Parameter:
    """The parameter ``name`` (snake_case, or the kebab-case of its flag); a name that is no
    parameter raises ``ValueError``, so that a misspelt name fails where it is written."""
    try:
        return Parameter(name.replace("-", "_"))
    except ValueError:
        raise ValueError(f"{name!r} is not a parameter of the upload program") from None


def side_parameter(side: Side, name: str) -> Parameter:
    """The parameter ``name`` of the source or the destination: ``("source", "aws_bucket")`` ->
    :attr:`Parameter.SOURCE_AWS_BUCKET`; raises ``ValueError`` for a side or name that is none."""
    if side not in SIDES:
        raise ValueError(f"{side!r} is not a side of the upload (source, destination)")
    return parameter(f"{side}_{name}")


def env_name(name: Parameter | str) -> str:
    """The variable of a parameter: ``source_aws_bucket`` / ``source-aws-bucket`` ->
    ``MODEL_SYNC_SOURCE_AWS_BUCKET``; a name that is no parameter raises ``ValueError``."""
    return ENV_PREFIX + parameter(name).value.upper()


# ------------------------------------------------------------------------------ exit codes
EXIT_OK: Final = 0
EXIT_TRANSFER: Final = 1
"""The transfer (download, push, upload) or an unexpected step failed."""
EXIT_CONFIG: Final = 2
"""Parameters or credential files are missing or invalid (nothing was contacted), or a server's
certificate is not trusted with the CA parameters given; the Job fails without a retry."""
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
