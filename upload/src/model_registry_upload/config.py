"""Parameters of the upload program.

Every parameter has a ``--flag`` and a ``MODEL_SYNC_*`` environment variable of the same name
(``--source-aws-bucket`` / ``MODEL_SYNC_SOURCE_AWS_BUCKET``), as in the upstream async-upload
job. Each value is resolved with this precedence, highest first:

1. command-line argument,
2. environment variable,
3. credential files (``*_CREDENTIALS_PATH``: an S3 Secret directory, a ``.dockerconfigjson``
   file, a directory holding a ``URI`` file),
4. built-in default.

Arguments and variables are read by pydantic-settings' CLI and env sources, the S3 and URI
credential directories by its secrets-directory source (see :func:`resolve_raw` for the order).
The result is a typed :class:`UploadConfig`. Every problem raises :class:`ConfigError` whose
message names the parameter by flag and environment variable.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import functools
import inspect
import json
import logging
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qsl, urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, create_model
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    CliSettingsSource,
    EnvSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError

from model_registry_upload_contract import ENV_PREFIX, PROGRAM, SIDES, Parameter, Side, env_name, side_parameter

from .errors import ConfigError
from .redact import register_basic_auth, register_secret

log = logging.getLogger(__name__)

DEFAULT_BASE_IMAGE = "public.ecr.aws/docker/library/busybox:latest"
DEFAULT_METADATA_PATH = "/etc/model-metadata"
DEFAULT_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path

MAX_PARALLELISM = 64
"""Concurrent part transfers at most (each holds a part in memory)."""
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024**3
"""S3's bounds of a multipart upload part."""
MAX_SECONDS = 86400.0
"""Longest timeout and progress interval accepted (a day)."""
MAX_ID_DIGITS = 19
"""Model registry ids are 64-bit integers."""
SHOWN_CHARS = 80
"""A rejected value is quoted in a message up to this many characters."""
TOKEN_OVER_HTTP = ("refuse", "mesh", "allow")
ADDRESSING_STYLES = ("auto", "path", "virtual")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL")

SourceType = Literal["s3", "oci", "uri", "pvc"]
DestinationType = Literal["oci", "s3"]
Intent = Literal["create_model", "create_version", "update_artifact"]


@dataclass(frozen=True)
class Param:
    """One parameter of the contract: ``name`` is the snake_case field, flag and env are derived."""

    name: Parameter
    default: str | None = None
    choices: tuple[str, ...] = ()
    secret: bool = False
    help: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return env_name(self.name)

    @property
    def label(self) -> str:
        return f"{self.flag} ({self.env})"


def _aws(side: Side) -> list[Param]:
    def aws(name: str) -> Parameter:
        return side_parameter(side, f"aws_{name}")

    return [
        Param(aws("bucket"), help="S3 bucket"),
        Param(aws("key"), help="object key or prefix"),
        Param(aws("region")),
        Param(aws("access_key_id"), secret=True),
        Param(aws("secret_access_key"), secret=True),
        Param(aws("session_token"), secret=True, help="session token of temporary credentials"),
        Param(aws("endpoint"), help="S3 endpoint URL (scheme://host:port)"),
        Param(
            aws("addressing_style"),
            choices=ADDRESSING_STYLES,
            help="path (endpoint/bucket/key), virtual (bucket.endpoint/key) or auto (default: virtual-hosted "
            "on AWS, path-style for a custom endpoint); else AWS_S3_ADDRESSING_STYLE",
        ),
    ]


PARAMS: tuple[Param, ...] = (
    Param(Parameter.SOURCE_TYPE, "s3", ("s3", "oci", "uri", "pvc")),
    Param(Parameter.SOURCE_URI, help="http(s):// or hf://repo/model[:revision]"),
    *_aws("source"),
    Param(Parameter.SOURCE_OCI_URI),
    Param(Parameter.SOURCE_OCI_REGISTRY),
    Param(Parameter.SOURCE_OCI_USERNAME),
    Param(Parameter.SOURCE_OCI_PASSWORD, secret=True),
    Param(Parameter.SOURCE_OCI_ENABLE_TLS_VERIFY, "true"),
    Param(Parameter.SOURCE_OCI_CA_BUNDLE, help="PEM CA bundle to verify the source registry"),
    Param(Parameter.SOURCE_PATH, help="pvc source: a mounted directory or file"),
    Param(Parameter.DESTINATION_TYPE, "oci", ("oci", "s3")),
    *_aws("destination"),
    Param(Parameter.DESTINATION_OCI_URI, help="host[:port]/repository:tag, no scheme"),
    Param(Parameter.DESTINATION_OCI_REGISTRY),
    Param(Parameter.DESTINATION_OCI_USERNAME),
    Param(Parameter.DESTINATION_OCI_PASSWORD, secret=True),
    Param(Parameter.DESTINATION_OCI_BASE_IMAGE, DEFAULT_BASE_IMAGE),
    Param(Parameter.DESTINATION_OCI_ENABLE_TLS_VERIFY, "true"),
    Param(Parameter.DESTINATION_OCI_PLATFORM, "linux/amd64", help="platform picked from a multi-arch base"),
    Param(Parameter.DESTINATION_OCI_CA_BUNDLE, help="PEM CA bundle to verify the destination (and base) registry"),
    Param(Parameter.SOURCE_AWS_CA_BUNDLE, help="PEM CA bundle to verify the source S3 endpoint"),
    Param(Parameter.DESTINATION_AWS_CA_BUNDLE, help="PEM CA bundle to verify the destination S3 endpoint"),
    Param(Parameter.SOURCE_URI_CA_BUNDLE, help="PEM CA bundle to verify an https source URI"),
    Param(Parameter.MODEL_UPLOAD_INTENT, "update_artifact", ("create_model", "create_version", "update_artifact")),
    Param(Parameter.MODEL_ID),
    Param(Parameter.MODEL_VERSION_ID),
    Param(Parameter.MODEL_ARTIFACT_ID),
    Param(Parameter.STORAGE_PATH, "/tmp/model-sync"),  # noqa: S108 - upstream default scratch dir
    Param(Parameter.REGISTRY_SERVER_ADDRESS),
    Param(Parameter.REGISTRY_PORT, "443"),
    Param(Parameter.REGISTRY_IS_SECURE, "true"),
    Param(Parameter.REGISTRY_AUTHOR),
    Param(Parameter.REGISTRY_USER_TOKEN, secret=True),
    Param(
        Parameter.REGISTRY_TOKEN_OVER_HTTP,
        "refuse",
        TOKEN_OVER_HTTP,
        help="a bearer token is sent only over https://: refuse (default) fails a plain http:// registry "
        "address that would get a token; mesh sends it to the Pod's Istio sidecar, which encrypts the "
        "connection (what the operator sets for an Istio registry); allow sends it in clear text",
    ),
    Param(Parameter.REGISTRY_USER_TOKEN_ENVVAR),
    Param(Parameter.REGISTRY_CUSTOM_CA),
    Param(Parameter.REGISTRY_CUSTOM_CA_ENVVAR),
    Param(
        Parameter.REGISTRY_LOG_LEVEL,
        help="log level of this program: DEBUG, INFO, WARNING, ERROR, CRITICAL or 10..50 "
        "(default INFO; the LOGLEVEL variable is read when this is unset)",
    ),
    Param(Parameter.SIGN),
    Param(Parameter.SIGNING_IDENTITY_TOKEN_PATH),
    Param(Parameter.METADATA_CONFIGMAP_PATH),
    Param(Parameter.SOURCE_S3_CREDENTIALS_PATH),
    Param(Parameter.DESTINATION_S3_CREDENTIALS_PATH),
    Param(Parameter.SOURCE_OCI_CREDENTIALS_PATH),
    Param(Parameter.DESTINATION_OCI_CREDENTIALS_PATH),
    Param(Parameter.SOURCE_URI_CREDENTIALS_PATH),
    Param(
        Parameter.PARALLELISM, "4", help=f"concurrent part transfers (ranged reads fetched ahead), 1..{MAX_PARALLELISM}"
    ),
    Param(
        Parameter.PART_SIZE,
        "8388608",
        help="bytes per transferred part (5 MiB..5 GiB); the transfer buffers grow with "
        "part size x parallelism (x (parallelism + 1) for an OCI destination), never with the model size",
    ),
    Param(Parameter.PROGRESS_INTERVAL, "5", help="seconds between progress log lines (at most a day)"),
    Param(Parameter.TIMEOUT, "60", help="network timeout in seconds (at most a day)"),
)
PARAMS_BY_NAME: dict[str, Param] = {p.name.value: p for p in PARAMS}


def label(name: str) -> str:
    """``--flag (MODEL_SYNC_ENV)`` of a parameter."""
    return PARAMS_BY_NAME[name].label


def _sided(side: Side, name: str) -> str:
    """The parameter ``name`` of the source or the destination (``aws_bucket``): a name that is
    no parameter raises ``ValueError`` rather than reading nothing."""
    return side_parameter(side, name).value


# ---------------------------------------------------------------------------------------
# typed result


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class S3Location(_Model):
    bucket: str
    key: str
    region: str | None = None
    """``None``: the AWS configuration's, else the bucket's (see :class:`.s3.S3Client`)."""
    endpoint: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    """Both or neither; neither: the standard AWS credential chain (:mod:`.s3_credentials`)."""
    session_token: SecretStr | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    ca_bundle: Path | None = None


class S3Source(_Model):
    type: Literal["s3"] = "s3"
    s3: S3Location


class UriSource(_Model):
    type: Literal["uri"] = "uri"
    uri: SecretStr
    """May carry credentials (user:pass@ or a signed query), so it is kept secret."""
    ca_bundle: Path | None = None


class PvcSource(_Model):
    type: Literal["pvc"] = "pvc"
    path: Path


class OciSource(_Model):
    type: Literal["oci"] = "oci"
    uri: str
    registry: str
    username: str | None = None
    password: SecretStr | None = None
    tls_verify: bool = True
    ca_bundle: Path | None = None


class OciDestination(_Model):
    type: Literal["oci"] = "oci"
    uri: str
    registry: str
    username: str | None = None
    password: SecretStr | None = None
    base_image: str
    tls_verify: bool = True
    ca_bundle: Path | None = None
    platform: str = "linux/amd64"
    auths: dict[str, tuple[str, SecretStr]] = {}
    """Extra ``host -> (user, password)`` pairs from the dockerconfigjson (base image pulls)."""


class S3Destination(_Model):
    type: Literal["s3"] = "s3"
    s3: S3Location


class RegistryConfig(_Model):
    url: str
    """``scheme://host:port`` without the API path."""
    is_secure: bool
    token: SecretStr | None = None
    custom_ca: Path | None = None
    author: str | None = None
    log_level: int = logging.INFO
    token_over_http: Literal["refuse", "mesh", "allow"] = "refuse"  # noqa: S105 - a policy, not a token


class UploadConfig(_Model):
    source: S3Source | UriSource | PvcSource | OciSource
    destination: OciDestination | S3Destination
    intent: Intent
    model_id: str | None = None
    model_version_id: str | None = None
    model_artifact_id: str | None = None
    storage_path: Path
    registry: RegistryConfig
    metadata_path: Path | None = None
    sign: bool = False
    parallelism: int = 4
    part_size: int = 8 * 1024 * 1024
    progress_interval: float = 5.0
    timeout: float = 60.0


# ---------------------------------------------------------------------------------------
# raw resolution: pydantic-settings' CLI, env and secrets-directory sources


class _ParamsBase(BaseSettings):
    """Copy a model to an OCI modelcar image or S3 and register it in Model Registry.

    Every --flag can also be given as the environment variable shown with it (MODEL_SYNC_<FLAG>).
    Precedence, highest first: argument, environment variable, credential files
    (*_CREDENTIALS_PATH), default."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore")


def _field_help(p: Param) -> str | None:
    text = p.help
    if p.choices:
        text = f"{text}; one of {', '.join(p.choices)}" if text else f"one of {', '.join(p.choices)}"
    return text or None


UploadParams: type[_ParamsBase] = create_model(
    "UploadParams",
    __base__=_ParamsBase,
    **{p.name.value: (str | None, Field(p.default, description=_field_help(p))) for p in PARAMS},  # type: ignore[call-overload]
)
"""Every parameter as an optional string: the sources only collect values (checks follow, with
messages naming the parameter). Its fields, flags (``--kebab-case``) and env names are :data:`PARAMS`'."""

PROG = PROGRAM
_NO_NONE = "\0"
"""pydantic-settings turns the CLI value ``null`` into None; no argv string can hold NUL, so with
this as that marker every value given stays the string it was (``--model-id null`` is an error)."""


class _Parser(argparse.ArgumentParser):
    """The root parser handed to pydantic-settings' CLI source: its own parser reports an error
    as ``SettingsError('error parsing CLI: ...')`` or exits, where this program raises a
    :class:`ConfigError` (exit 2, the message naming the flag) and never abbreviates a flag."""

    def error(self, message: str) -> Any:  # noqa: ANN401 - signature of the base class
        raise ConfigError(f"invalid command line: {message}")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """pydantic-settings writes ``(default: <none marker>)`` for a parameter without a default:
    dropped, there is none to show."""

    def _expand_help(self, action: argparse.Action) -> str:
        return super()._expand_help(action).replace(f" (default: {_NO_NONE})", "").replace(f"(default: {_NO_NONE})", "")


@functools.cache
def _cli_source() -> CliSettingsSource[_ParamsBase]:
    """Built once (a parser of every parameter: tens of milliseconds), parsing each call's argv."""
    return CliSettingsSource(
        UploadParams,
        cli_prog_name=PROG,
        cli_kebab_case=True,
        cli_parse_none_str=_NO_NONE,
        cli_hide_none_type=True,
        cli_show_env_vars=True,
        case_sensitive=True,
        root_parser=_Parser(
            prog=PROG,
            description=inspect.cleandoc(_ParamsBase.__doc__ or ""),
            allow_abbrev=False,
            formatter_class=_HelpFormatter,
        ),
        formatter_class=_HelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of the command line (``--help`` prints its help)."""
    parser = _cli_source().root_parser
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' env source reading a given mapping (``load_config`` takes one) instead
    of ``os.environ``. It matches case-insensitively (case-sensitive, it would look for the
    prefix plus the lower-case field name, ``MODEL_SYNC_timeout``), so it is handed only the
    exact documented names: ``model_sync_timeout`` is no parameter."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(UploadParams, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {p.env.lower(): self._environ[p.env] for p in PARAMS if self._environ.get(p.env)}


_CLI_LOCK = threading.Lock()


def _from_args(argv: Sequence[str]) -> dict[str, str]:
    with _CLI_LOCK:  # the source keeps the last parse
        values = _cli_source()(args=list(argv))()
    return {k: v for k, v in values.items() if v is not None}


def _from_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in _EnvSource(environ)().items() if v is not None}


def ascii_digits(text: str) -> bool:
    """Only the digits 0-9 (``str.isdigit`` also takes superscripts such as "²")."""
    return text.isascii() and text.isdigit()


def shown(value: str) -> str:
    """``repr`` of a rejected value, shortened: a message quotes what was given, never pages of it."""
    if len(value) > SHOWN_CHARS:
        return repr(value[:SHOWN_CHARS]) + f" (and {len(value) - SHOWN_CHARS} more characters)"
    return repr(value)


def read_text_file(path: Path, what: str) -> str:
    """A UTF-8 text file, stripped; an unreadable or undecodable file raises :class:`ConfigError`
    whose message starts with ``what`` (the parameter)."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror or exc.__class__.__name__}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what}: {path} is not UTF-8 text (byte {exc.start})") from None


def parse_json_text(text: str, what: str) -> Any:  # noqa: ANN401 - any JSON value
    """JSON with every way it can fail (syntax, nesting too deep, a number too long) a
    :class:`ConfigError` starting with ``what``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ConfigError(f"{what}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{what}: not valid JSON ({exc})") from None


def _is_file(path: str | Path) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def _is_dir(path: str | Path) -> bool:
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def _exists(path: str | Path) -> bool:
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


class _S3SecretKeys(BaseSettings):
    """The keys of an S3 Secret (a data connection) mounted as a directory, each field under any
    of its names, the first non-empty file first."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")

    aws_access_key_id: str | None = Field(None, validation_alias=AliasChoices("AWS_ACCESS_KEY_ID"))
    aws_secret_access_key: str | None = Field(None, validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY"))
    aws_session_token: str | None = Field(None, validation_alias=AliasChoices("AWS_SESSION_TOKEN"))
    aws_addressing_style: str | None = Field(None, validation_alias=AliasChoices("AWS_S3_ADDRESSING_STYLE"))
    aws_region: str | None = Field(None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    aws_endpoint: str | None = Field(None, validation_alias=AliasChoices("AWS_ENDPOINT_URL", "AWS_S3_ENDPOINT"))
    aws_bucket: str | None = Field(None, validation_alias=AliasChoices("AWS_BUCKET", "AWS_S3_BUCKET"))


class _UriSecretKeys(BaseSettings):
    """A URI credentials directory: the file ``URI``."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")

    uri: str | None = Field(None, validation_alias=AliasChoices("URI"))


class _SecretDir(SecretsSettingsSource):
    """pydantic-settings' secrets-directory source, reading a file as every credential file of
    this program is read (:func:`read_text_file`): the parent's own read raises a bare
    ``OSError`` / ``UnicodeDecodeError`` (a traceback, no parameter named) and takes an empty
    file as the value where the field's next name should be tried."""

    def __init__(self, keys: type[BaseSettings], directory: Path, param: str) -> None:
        super().__init__(keys, secrets_dir=directory, case_sensitive=True)
        self.directory = directory
        self.param = param

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for _key, file_name, _complex in self._extract_field_info(field, field_name):
            path = self.find_case_path(self.directory, file_name, case_sensitive=True)
            if path is not None and _is_file(path):
                value = read_text_file(path, label(self.param))
                if value:
                    return value, field_name, False
            log.debug("%s not found in %s", file_name, self.directory)
        return None, field_name, False

    def read(self) -> dict[str, str]:
        """``field -> value`` of the files present; a missing directory raises :class:`ConfigError`."""
        if not _is_dir(self.directory):
            raise ConfigError(f"{label(self.param)}: credentials folder not found: {self.directory}")
        try:
            values = self()
        except SettingsError as exc:  # the source wraps what a field's read raised
            if isinstance(exc.__cause__, ConfigError):
                raise exc.__cause__ from None
            raise
        except OSError as exc:  # listing the directory
            raise ConfigError(
                f"{label(self.param)}: cannot read {self.directory}: {exc.strerror or exc.__class__.__name__}"
            ) from None
        # the source keys a value by the field's first alias (the file name): back to the field
        fields = {
            str(alias): name
            for name, info in self.settings_cls.model_fields.items()
            if isinstance(info.validation_alias, AliasChoices)
            for alias in info.validation_alias.choices
        }
        return {fields.get(k, k): v for k, v in values.items() if isinstance(v, str)}


def parse_dockerconfig(path: str, param: str) -> dict[str, tuple[str, str]]:
    """``host -> (username, password)`` from a ``.dockerconfigjson`` (or ``config.json``)."""
    raw = read_text_file(Path(path), f"{label(param)}: docker config")
    data = parse_json_text(raw, f"{label(param)}: docker config {path}")
    if not isinstance(data, dict) or not isinstance(data.get("auths"), dict):
        raise ConfigError(f'{label(param)}: invalid docker config file {path}: no "auths" object')
    out: dict[str, tuple[str, str]] = {}
    for host, entry in data["auths"].items():
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{label(param)}: invalid docker config file {path}: auths[{shown(str(host))}] is not an object"
            )
        user = entry.get("username")
        password = entry.get("password")
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            try:
                decoded = base64.b64decode(auth, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = auth
                if ":" in auth:
                    log.warning("DEPRECATED: plain-text user:password in auths[%s].auth of %s", host, path)
            if ":" not in decoded:
                raise ConfigError(
                    f"{label(param)}: invalid docker config file {path}: auths[{shown(str(host))}].auth "
                    "is not base64 of user:password"
                )
            user, _, password = decoded.partition(":")
        if isinstance(user, str) and isinstance(password, str) and (user or password):
            register_basic_auth(user, password)
            if isinstance(auth, str):
                register_secret(auth)
            out[_normalize_host(host)] = (user, password)
    return out


def _normalize_host(host: str) -> str:
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme) :]
    host = host.split("/", 1)[0]
    if host in ("index.docker.io", "registry-1.docker.io"):
        return "docker.io"
    return host


def registry_host(ref: str) -> str:
    """Registry host of an image reference (``docker.io`` when there is none)."""
    ref = ref.removeprefix("oci://").removeprefix("docker://")
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _lookup_auth(auths: Mapping[str, tuple[str, str]], registry: str) -> tuple[str, str] | None:
    host = _normalize_host(registry)
    if host in auths:
        return auths[host]
    # a key may carry a repository path (quay.io/org): match by host
    for key, value in auths.items():
        if key.split("/", 1)[0] == host:
            return value
    return None


def resolve_raw(argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Flat ``name -> value`` with the documented precedence (credential files included).

    The sources are called here in precedence order rather than through ``BaseSettings()``,
    whose env source reads ``os.environ`` only; the credential files come third because their
    paths are themselves parameters (args > env), and a ``.dockerconfigjson`` is no secrets
    directory: its entry is picked by the registry of the image reference."""
    explicit = {**_from_env(environ), **_from_args(argv)}  # args > env

    files: dict[str, str] = {}
    for side in SIDES:
        cred = explicit.get(_sided(side, "s3_credentials_path"))
        if cred:
            keys = _SecretDir(_S3SecretKeys, Path(cred), _sided(side, "s3_credentials_path")).read()
            files.update({_sided(side, k): v for k, v in keys.items()})
    uri_cred = explicit.get("source_uri_credentials_path")
    if uri_cred:
        uri_file = Path(uri_cred) / "URI"
        uri = _SecretDir(_UriSecretKeys, Path(uri_cred), "source_uri_credentials_path").read().get("uri")
        if uri is None and not _is_file(uri_file):
            raise ConfigError(f"{label('source_uri_credentials_path')}: URI credential file not found: {uri_file}")
        if uri:
            _register_uri_secrets(uri)
            files["source_uri"] = uri
    for side in SIDES:
        path = explicit.get(_sided(side, "oci_credentials_path"))
        if not path:
            continue
        auths = parse_dockerconfig(path, _sided(side, "oci_credentials_path"))
        registry = explicit.get(_sided(side, "oci_registry")) or (
            registry_host(explicit[_sided(side, "oci_uri")]) if explicit.get(_sided(side, "oci_uri")) else None
        )
        if registry is None:
            continue
        found = _lookup_auth(auths, registry)
        if found is None:
            raise ConfigError(
                f"{label(_sided(side, 'oci_credentials_path'))}: no credentials for registry {registry!r} in {path} "
                f"(auths has: {', '.join(sorted(auths)) or 'nothing'})"
            )
        files[_sided(side, "oci_username")], files[_sided(side, "oci_password")] = found

    defaults = {p.name.value: p.default for p in PARAMS if p.default is not None}
    resolved = {**defaults, **files, **explicit}
    for name, value in resolved.items():
        if PARAMS_BY_NAME[name].secret:
            register_secret(value)
    return resolved


# ---------------------------------------------------------------------------------------
# validation into the typed config

_TRUE = {"yes", "y", "true", "t", "1", "on"}
_FALSE = {"no", "n", "false", "f", "0", "off"}


def parse_bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ConfigError(f"{label(name)}: invalid boolean value {shown(value)} (use true/false, yes/no, 1/0)")


def parse_int(name: str, value: str, minimum: int, maximum: int) -> int:
    """A decimal integer of ASCII digits within ``[minimum, maximum]``."""
    v = value.strip()
    if not ascii_digits(v):
        raise ConfigError(f"{label(name)}: {shown(value)} is not a whole number (digits 0-9)")
    if len(v.lstrip("0")) > len(str(maximum)) or not minimum <= int(v) <= maximum:
        raise ConfigError(f"{label(name)}: must be between {minimum} and {maximum}, got {shown(v)}")
    return int(v)


def parse_seconds(name: str, value: str) -> float:
    """A positive, finite number of seconds of at most :data:`MAX_SECONDS`."""
    v = value.strip()
    number = math.nan
    if v.isascii() and len(v) <= 32:
        with contextlib.suppress(ValueError):
            number = float(v)
    if not math.isfinite(number):
        raise ConfigError(f"{label(name)}: {shown(value)} is not a number of seconds")
    if not 0 < number <= MAX_SECONDS:
        raise ConfigError(f"{label(name)}: must be more than 0 and at most {MAX_SECONDS:g} seconds, got {shown(v)}")
    return number


def parse_log_level(value: str) -> int:
    """``DEBUG`` ... ``CRITICAL`` (any case) or a number from 10 to 50."""
    v = value.strip()
    if v.upper() in LOG_LEVELS:
        level: int = logging.getLevelNamesMapping()[v.upper()]
        return level
    if ascii_digits(v) and len(v) <= 2 and logging.DEBUG <= int(v) <= logging.CRITICAL:
        return int(v)
    raise ConfigError(
        f"{label('registry_log_level')}: unknown log level {shown(value)} (use DEBUG, INFO, WARNING, ERROR, "
        "CRITICAL or a number from 10 to 50)"
    )


URL_PARAMS = ("registry_server_address", "source_aws_endpoint", "destination_aws_endpoint")


def register_given_secrets(argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """Register the secrets given as parameters (and the user info of URL parameters) before any
    other step, so that even the first error message masks them. Never raises."""
    try:
        given = {**_from_env(environ), **_from_args(argv)}
    except ConfigError:
        given = _from_env(environ)
    for name, value in given.items():
        if PARAMS_BY_NAME[name].secret:
            register_secret(value)
        elif name == "source_uri":
            _register_uri_secrets(value)
        elif name in URL_PARAMS:
            try:
                parts = urlsplit(value)
                user, password = parts.username, parts.password
            except ValueError:
                continue
            if password:
                register_basic_auth(user, password)
            if user:
                register_secret(user)


def log_level(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """The program's log level: the parameter, else the legacy ``LOGLEVEL`` variable, else INFO.

    Read before the rest of the configuration so that the configuration's own messages follow it."""
    value = _from_args(argv).get("registry_log_level") or _from_env(environ).get("registry_log_level")
    if value:
        return parse_log_level(value)
    legacy = environ.get("LOGLEVEL", "").strip().upper()
    return logging.getLevelNamesMapping()[legacy] if legacy in LOG_LEVELS else logging.INFO


def port_of(name: str, parts: SplitResult) -> int | None:
    """The explicit port of a parsed URL, or None; out of range raises :class:`ConfigError`."""
    try:
        return parts.port
    except ValueError:
        raise ConfigError(f"{label(name)}: the port of the URL is not a number from 1 to 65535") from None


def parse_url(name: str, value: str, schemes: tuple[str, ...]) -> SplitResult:
    """A URL with one of ``schemes`` and a host; its user info (``user:password@``) is registered
    as a secret so that no message shows it."""
    try:
        parts = urlsplit(value)
    except ValueError:
        register_secret(value)
        raise ConfigError(f"{label(name)}: not a valid URL") from None
    if parts.password:
        register_basic_auth(parts.username, parts.password)
    if parts.username:
        register_secret(parts.username)
    if parts.scheme.lower() not in schemes or not parts.hostname:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"{label(name)}: {shown(redact_url(value))} is not a URL with a host ({allowed})")
    port = port_of(name, parts)
    if port == 0:
        raise ConfigError(f"{label(name)}: the port of the URL is not a number from 1 to 65535")
    return parts


def redact_url(value: str) -> str:
    """``value`` without the user info of a URL in it."""
    from .redact import strip_userinfo

    return strip_userinfo(value)


def _require(raw: Mapping[str, str], names: Sequence[str], what: str) -> None:
    missing = [n for n in names if not raw.get(n)]
    if missing:
        raise ConfigError(f"{what}: missing required parameter(s) " + ", ".join(label(n) for n in missing))


def _ca_bundle(raw: Mapping[str, str], name: str) -> Path | None:
    value = raw.get(name)
    if not value:
        return None
    path = Path(value)
    if not _is_file(path):
        raise ConfigError(f"{label(name)}: CA bundle {value} not found")
    return path


def _s3_location(raw: Mapping[str, str], side: Side, environ: Mapping[str, str]) -> S3Location:
    param = functools.partial(_sided, side)
    _require(raw, [param("aws_bucket"), param("aws_key")], f"{side} type s3")
    key_id, secret = raw.get(param("aws_access_key_id")), raw.get(param("aws_secret_access_key"))
    if bool(key_id) != bool(secret):
        raise ConfigError(
            f"{label(param('aws_access_key_id'))} and {label(param('aws_secret_access_key'))} must be set "
            "together, or both be unset (then the AWS credential chain provides the credentials)"
        )
    token = raw.get(param("aws_session_token"))
    if token and not key_id:
        raise ConfigError(
            f"{label(param('aws_session_token'))} needs {label(param('aws_access_key_id'))} and "
            f"{label(param('aws_secret_access_key'))} (the temporary credentials it belongs to)"
        )
    style = raw.get(param("aws_addressing_style")) or environ.get("AWS_S3_ADDRESSING_STYLE") or "auto"
    if style not in ADDRESSING_STYLES:
        raise ConfigError(
            f"{label(param('aws_addressing_style'))}: invalid value {shown(style)} "
            f"(choose from {', '.join(ADDRESSING_STYLES)})"
        )
    endpoint = raw.get(param("aws_endpoint"))
    if endpoint:
        if "://" not in endpoint:
            raise ConfigError(
                f"{label(param('aws_endpoint'))}: {shown(endpoint)} must be a URL such as https://host:port"
            )
        parts = parse_url(param("aws_endpoint"), endpoint, ("http", "https"))
        # S3 authenticates with the keys; user info in the endpoint would only spoil the signed host
        endpoint = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return S3Location(
        bucket=raw[param("aws_bucket")],
        key=raw[param("aws_key")],
        region=raw.get(param("aws_region")),
        endpoint=endpoint,
        access_key_id=SecretStr(key_id) if key_id else None,
        secret_access_key=SecretStr(secret) if secret else None,
        session_token=SecretStr(token) if token else None,
        addressing_style=style,
        ca_bundle=_ca_bundle(raw, param("aws_ca_bundle")),
    )


def _user_pass(raw: Mapping[str, str], side: Side) -> tuple[str | None, SecretStr | None]:
    param = functools.partial(_sided, side)
    user = raw.get(param("oci_username"))
    password = raw.get(param("oci_password"))
    if bool(user) != bool(password):
        raise ConfigError(
            f"{label(param('oci_username'))} and {label(param('oci_password'))} must be set together or both be unset"
        )
    if user and password:
        register_basic_auth(user, password)
        return user, SecretStr(password)
    return None, None


def _source(raw: Mapping[str, str], environ: Mapping[str, str]) -> S3Source | UriSource | PvcSource | OciSource:
    kind = raw["source_type"]
    if kind == "s3":
        return S3Source(s3=_s3_location(raw, "source", environ))
    if kind == "uri":
        _require(raw, ["source_uri"], "source type uri")
        uri = raw["source_uri"]
        _register_uri_secrets(uri)
        scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
        if scheme not in ("http", "https", "hf"):
            raise ConfigError(f"{label('source_uri')}: unsupported URI scheme (use http://, https:// or hf://)")
        if scheme != "hf":
            parse_url("source_uri", uri, ("http", "https"))
        return UriSource(uri=SecretStr(uri), ca_bundle=_ca_bundle(raw, "source_uri_ca_bundle"))
    if kind == "pvc":
        _require(raw, ["source_path"], "source type pvc")
        path = Path(raw["source_path"])
        if not _exists(path):
            raise ConfigError(f"{label('source_path')}: {path} does not exist (is the volume mounted?)")
        return PvcSource(path=path)
    _require(raw, ["source_oci_uri"], "source type oci")
    check_image_reference("source_oci_uri", raw["source_oci_uri"].removeprefix("oci://").removeprefix("docker://"))
    user, password = _user_pass(raw, "source")
    registry = raw.get("source_oci_registry") or registry_host(raw["source_oci_uri"])
    return OciSource(
        uri=raw["source_oci_uri"].removeprefix("oci://").removeprefix("docker://"),
        registry=registry,
        username=user,
        password=password,
        tls_verify=parse_bool("source_oci_enable_tls_verify", raw["source_oci_enable_tls_verify"]),
        ca_bundle=_ca_bundle(raw, "source_oci_ca_bundle") or _containers_ca(registry),
    )


def _register_uri_secrets(uri: str) -> None:
    """A URI may carry a password (``user:pass@``), a token as user name or a signed query string:
    keep those out of logs. A URI with none of them is not a secret: messages name it."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # unparsable: all of it
        register_secret(uri)
        return
    if parts.username or parts.password or parts.query:
        register_secret(uri)
    if parts.password:
        register_basic_auth(parts.username, parts.password)
    elif parts.username:
        register_secret(parts.username)
    if parts.query:
        register_secret(parts.query)
        for _, value in parse_qsl(parts.query):
            if len(value) >= 8:
                register_secret(value)


def _destination(raw: Mapping[str, str], environ: Mapping[str, str]) -> OciDestination | S3Destination:
    if raw["destination_type"] == "s3":
        return S3Destination(s3=_s3_location(raw, "destination", environ))
    _require(raw, ["destination_oci_uri"], "destination type oci")
    uri = raw["destination_oci_uri"].removeprefix("oci://").removeprefix("docker://")
    if "://" in uri or "/" not in uri:
        raise ConfigError(
            f"{label('destination_oci_uri')}: {shown(raw['destination_oci_uri'])} is not an image reference "
            "like host:port/repository:tag"
        )
    check_image_reference("destination_oci_uri", uri)
    if raw["destination_oci_base_image"] != "scratch":
        check_image_reference("destination_oci_base_image", raw["destination_oci_base_image"])
    registry = raw.get("destination_oci_registry") or registry_host(uri)
    user, password = _user_pass(raw, "destination")
    auths: dict[str, tuple[str, SecretStr]] = {}
    cred = raw.get("destination_oci_credentials_path")
    if cred:
        parsed = parse_dockerconfig(cred, "destination_oci_credentials_path")
        auths = {h: (u, SecretStr(p)) for h, (u, p) in parsed.items()}
    platform = raw["destination_oci_platform"]
    if not re.fullmatch(r"[a-z0-9_]+/[a-z0-9_]+(/[a-z0-9_]+)?", platform):
        raise ConfigError(f"{label('destination_oci_platform')}: {shown(platform)} is not os/arch[/variant]")
    return OciDestination(
        uri=uri,
        registry=registry,
        username=user,
        password=password,
        base_image=raw["destination_oci_base_image"],
        tls_verify=parse_bool("destination_oci_enable_tls_verify", raw["destination_oci_enable_tls_verify"]),
        ca_bundle=_ca_bundle(raw, "destination_oci_ca_bundle") or _containers_ca(registry),
        platform=platform,
        auths=auths,
    )


# The OCI distribution reference grammar (distribution/reference): [domain[:port]/]path[:tag][@digest].
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127}"
_DIGEST = r"[a-zA-Z][a-zA-Z0-9]*(?:[-_+.][a-zA-Z][a-zA-Z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII
)
MAX_IMAGE_REFERENCE = 512


def check_image_reference(name: str, value: str) -> None:
    """``value`` follows the OCI reference grammar, and a port in it is from 1 to 65535."""
    if len(value) > MAX_IMAGE_REFERENCE or not IMAGE_REFERENCE.fullmatch(value):
        raise ConfigError(
            f"{label(name)}: {shown(value)} is not an image reference ([host[:port]/]repository[:tag][@digest], "
            "lower-case repository, ASCII only)"
        )
    first = value.split("/", 1)[0]
    if "/" in value and ":" in first and not first.endswith("]"):
        port = first.rsplit(":", 1)[1]
        if not (len(port) <= 5 and 1 <= int(port) <= 65535):
            raise ConfigError(f"{label(name)}: the port in {shown(value)} is not a number from 1 to 65535")


CONTAINERS_CERTS_DIR = Path("/etc/containers/certs.d")


def _containers_ca(registry: str) -> Path | None:
    """``/etc/containers/certs.d/<registry>/ca.crt`` when present (containers-certs.d convention)."""
    candidate = CONTAINERS_CERTS_DIR / registry / "ca.crt"
    return candidate if _is_file(candidate) else None


def _registry(raw: Mapping[str, str], environ: Mapping[str, str]) -> RegistryConfig:
    _require(raw, ["registry_server_address"], "model registry")
    is_secure = parse_bool("registry_is_secure", raw["registry_is_secure"])
    address = raw["registry_server_address"].rstrip("/")
    if "://" not in address:
        address = ("https://" if is_secure else "http://") + address
    parts = parse_url("registry_server_address", address, ("http", "https"))
    scheme = parts.scheme.lower()
    port = parse_int("registry_port", raw["registry_port"], 1, 65535)
    url = f"{scheme}://{parts.netloc}" if parts.port is not None else f"{scheme}://{parts.netloc}:{port}"

    token = raw.get("registry_user_token")
    if not token:
        token_path: str | None = None
        envvar = raw.get("registry_user_token_envvar")
        if envvar:
            token_path = environ.get(envvar)
            if not token_path:
                raise ConfigError(f"{label('registry_user_token_envvar')}: environment variable {envvar} is not set")
        elif environ.get("KF_PIPELINES_SA_TOKEN_PATH"):
            token_path = environ["KF_PIPELINES_SA_TOKEN_PATH"]
        elif is_secure and _is_file(DEFAULT_TOKEN_PATH):
            token_path = DEFAULT_TOKEN_PATH
        if token_path:
            token = read_text_file(Path(token_path), f"{label('registry_user_token_envvar')}: token file")
    if token:
        register_secret(token)
    if is_secure and not token:
        raise ConfigError(
            f"{label('registry_user_token')}: a token is required when {label('registry_is_secure')} is true"
        )
    over_http = raw["registry_token_over_http"]
    if token and scheme == "http" and over_http == "refuse":
        raise ConfigError(
            f"{label('registry_server_address')}: {redact_url(address)} is plain http://, so the registry token "
            f"would travel unencrypted: use the registry's https:// address, or set "
            f"{label('registry_token_over_http')} to mesh (an Istio sidecar encrypts the connection) or allow"
        )
    ca: Path | None = None
    ca_param, ca_value, ca_origin = "registry_custom_ca", raw.get("registry_custom_ca"), ""
    if not ca_value and raw.get("registry_custom_ca_envvar"):
        ca_envvar = raw["registry_custom_ca_envvar"]
        ca_param, ca_value = "registry_custom_ca_envvar", environ.get(ca_envvar) or None
        ca_origin = f" (the value of environment variable {ca_envvar})"
    if ca_value and is_secure:
        ca = Path(ca_value)
        if not _is_file(ca):
            raise ConfigError(f"{label(ca_param)}: CA bundle {ca}{ca_origin} not found")
    return RegistryConfig(
        url=url,
        is_secure=is_secure,
        token=SecretStr(token) if token else None,
        custom_ca=ca,
        author=raw.get("registry_author"),
        log_level=parse_log_level(raw["registry_log_level"]) if raw.get("registry_log_level") else logging.INFO,
        token_over_http=over_http,
    )


def _sign(raw: Mapping[str, str], environ: Mapping[str, str]) -> bool:
    if raw.get("sign"):
        return parse_bool("sign", raw["sign"])
    urls = ("SIGSTORE_TUF_URL", "SIGSTORE_FULCIO_URL", "SIGSTORE_REKOR_URL")
    present = [u for u in urls if environ.get(u)]
    if present and len(present) < len(urls):
        log.warning("signing disabled: missing %s", ", ".join(u for u in urls if u not in present))
    return len(present) == len(urls)


def load_config(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> UploadConfig:
    """Resolve and validate every parameter; raises :class:`ConfigError`."""
    env = os.environ if environ is None else environ
    raw = resolve_raw(argv, env)
    for p in PARAMS:
        if p.choices and p.name in raw and raw[p.name] not in p.choices:  # "" too: nothing defaults it
            raise ConfigError(f"{p.label}: invalid value {shown(raw[p.name])} (choose from {', '.join(p.choices)})")
    intent = raw["model_upload_intent"]
    if intent == "update_artifact":
        _require(raw, ["model_artifact_id"], "intent update_artifact")
    elif intent == "create_version":
        _require(raw, ["model_id"], "intent create_version")
    for id_name in ("model_id", "model_version_id", "model_artifact_id"):
        value = raw.get(id_name)
        if value and not (ascii_digits(value) and len(value) <= MAX_ID_DIGITS):
            raise ConfigError(
                f"{label(id_name)}: {shown(value)} is not a numeric id (at most {MAX_ID_DIGITS} digits 0-9)"
            )
    source = _source(raw, env)
    destination = _destination(raw, env)
    sign = _sign(raw, env)
    if sign:
        raise ConfigError(f"{label('sign')}: model signing is not supported by this upload program")
    metadata = raw.get("metadata_configmap_path")
    metadata_path: Path | None = None
    if metadata:
        metadata_path = Path(metadata)
        if not _is_dir(metadata_path):
            raise ConfigError(f"{label('metadata_configmap_path')}: {metadata} is not a directory")
    elif _is_dir(DEFAULT_METADATA_PATH):
        metadata_path = Path(DEFAULT_METADATA_PATH)
    if intent in ("create_model", "create_version") and metadata_path is None:
        raise ConfigError(f"intent {intent}: {label('metadata_configmap_path')} is required (model metadata)")
    return UploadConfig(
        source=source,
        destination=destination,
        intent=intent,
        model_id=raw.get("model_id"),
        model_version_id=raw.get("model_version_id"),
        model_artifact_id=raw.get("model_artifact_id"),
        storage_path=Path(raw["storage_path"]),
        registry=_registry(raw, env),
        metadata_path=metadata_path,
        sign=sign,
        parallelism=parse_int("parallelism", raw["parallelism"], 1, MAX_PARALLELISM),
        part_size=parse_int("part_size", raw["part_size"], MIN_PART_SIZE, MAX_PART_SIZE),
        progress_interval=parse_seconds("progress_interval", raw["progress_interval"]),
        timeout=parse_seconds("timeout", raw["timeout"]),
    )
