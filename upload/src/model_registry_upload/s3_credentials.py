"""Where the upload program's S3 credentials come from, first match wins:

1. the parameters: ``--<side>-aws-access-key-id`` / ``--<side>-aws-secret-access-key`` (and
   ``--<side>-aws-session-token`` for temporary credentials), each from its argument, its
   ``MODEL_SYNC_*`` variable or the mounted credentials Secret (``AWS_ACCESS_KEY_ID``,
   ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` files), as resolved by :mod:`.config`;
2. botocore's standard chain, read from the process environment and files as every AWS SDK
   does: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, a role
   assumed with a web identity token (``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``: IRSA
   on EKS), the shared config and credentials files (``AWS_PROFILE``, ``AWS_CONFIG_FILE``,
   ``AWS_SHARED_CREDENTIALS_FILE``, ``role_arn`` + ``source_profile`` included), the container
   credentials endpoint (ECS, EKS Pod Identity) and the instance metadata service.

The credentials are resolved (and a role assumed) before any S3 call, so that a Pod without any
fails with a configuration error naming the parameters, and their secret parts are registered
with :mod:`.redact`.
"""

from __future__ import annotations

import logging

import botocore.exceptions
from boto3.session import Session

from .config import S3Location, label
from .errors import ConfigError, TransferError
from .redact import register_secret

log = logging.getLogger(__name__)

CHAIN = (
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, "
    "AWS_PROFILE or the shared config files, container or instance metadata credentials"
)

_CONFIG_ERRORS = (
    botocore.exceptions.ProfileNotFound,
    botocore.exceptions.ConfigNotFound,
    botocore.exceptions.ConfigParseError,
    botocore.exceptions.InvalidConfigError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.UnknownCredentialError,
)


def _params(side: str | None) -> str:
    if side is None:
        return "the S3 access key parameters"
    return f"{label(f'{side}_aws_access_key_id')} and {label(f'{side}_aws_secret_access_key')}"


def resolve_session(loc: S3Location, side: str | None = None) -> Session:
    """A boto3 session holding credentials that work (static, or refreshed by botocore)."""
    try:
        if loc.access_key_id is not None and loc.secret_access_key is not None:
            session = Session(
                aws_access_key_id=loc.access_key_id.get_secret_value(),
                aws_secret_access_key=loc.secret_access_key.get_secret_value(),
                aws_session_token=loc.session_token.get_secret_value() if loc.session_token else None,
            )
        else:
            session = Session()
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
    except _CONFIG_ERRORS as exc:
        raise ConfigError(f"S3 credentials for {_params(side)} from the AWS configuration: {exc}") from None
    except OSError as exc:  # e.g. AWS_WEB_IDENTITY_TOKEN_FILE names no file (a token not mounted)
        raise ConfigError(
            f"S3 credentials for {_params(side)} from the AWS configuration: cannot read {exc.filename}: "
            f"{exc.strerror or exc.__class__.__name__}"
        ) from None
    except botocore.exceptions.ClientError as exc:  # STS refused the role or the token
        err = exc.response.get("Error", {})
        raise TransferError(
            f"S3 credentials: {err.get('Code', 'error')} from STS: {err.get('Message', '')}".rstrip(": ")
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise TransferError(f"S3 credentials: {exc}") from None
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        raise ConfigError(
            f"no S3 credentials: set {_params(side)} (or a credentials Secret), or provide them to the "
            f"Pod through the AWS credential chain ({CHAIN})"
        )
    register_secret(frozen.secret_key)
    register_secret(frozen.token)
    assert credentials is not None
    origin = "the parameters" if credentials.method == "explicit" else credentials.method
    log.info("S3 credentials of the %s: %s", side or "S3 client", origin)
    return session
