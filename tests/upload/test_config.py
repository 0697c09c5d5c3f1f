"""Parameter resolution: args > env > credential files > defaults, and validation messages."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from model_registry_operator.upload.config import (
    DEFAULT_BASE_IMAGE,
    PARAMS,
    OciDestination,
    S3Destination,
    S3Source,
    UriSource,
    load_config,
    resolve_raw,
)
from model_registry_operator.upload.errors import EXIT_CONFIG, ConfigError


def s3_dir(tmp_path: Path, name: str, **keys: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    for k, v in keys.items():
        (d / k).write_text(v + "\n")
    return d


BASE_ENV = {
    "MODEL_SYNC_SOURCE_AWS_BUCKET": "env-bucket",
    "MODEL_SYNC_SOURCE_AWS_KEY": "models/m1",
    "MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID": "env-akid",
    "MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY": "env-secret",
    "MODEL_SYNC_DESTINATION_OCI_URI": "127.0.0.1:5001/models/m1:v1",
    "MODEL_SYNC_MODEL_ARTIFACT_ID": "7",
    "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": "http://127.0.0.1:8080",
    "MODEL_SYNC_REGISTRY_IS_SECURE": "false",
}


def test_defaults_match_upstream() -> None:
    raw = resolve_raw([], {})
    assert raw["source_type"] == "s3"
    assert raw["destination_type"] == "oci"
    assert raw["model_upload_intent"] == "update_artifact"
    assert raw["destination_oci_base_image"] == DEFAULT_BASE_IMAGE
    assert raw["destination_oci_enable_tls_verify"] == "true"
    assert raw["storage_path"] == "/tmp/model-sync"
    assert raw["registry_port"] == "443"
    assert raw["registry_is_secure"] == "true"
    assert raw["registry_log_level"] == "30"


def test_every_param_has_flag_and_env() -> None:
    for p in PARAMS:
        assert p.env == "MODEL_SYNC_" + p.flag[2:].replace("-", "_").upper()


def test_precedence_every_level(tmp_path: Path) -> None:
    creds = s3_dir(tmp_path, "s3", AWS_ACCESS_KEY_ID="file-akid", AWS_SECRET_ACCESS_KEY="file-secret",
                   AWS_S3_BUCKET="file-bucket", AWS_DEFAULT_REGION="file-region", AWS_S3_ENDPOINT="http://file:1")
    env = {"MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH": str(creds), "MODEL_SYNC_SOURCE_AWS_BUCKET": "env-bucket",
           "MODEL_SYNC_SOURCE_AWS_REGION": "env-region"}
    args = ["--source-aws-bucket", "arg-bucket"]
    raw = resolve_raw(args, env)
    assert raw["source_aws_bucket"] == "arg-bucket"  # args > env > file
    assert raw["source_aws_region"] == "env-region"  # env > file
    assert raw["source_aws_access_key_id"] == "file-akid"  # file > default (none)
    assert raw["source_aws_endpoint"] == "http://file:1"
    assert raw["source_type"] == "s3"  # default
    # the credentials path itself follows args > env
    other = s3_dir(tmp_path, "s3b", AWS_ACCESS_KEY_ID="other-akid")
    raw = resolve_raw(["--source-s3-credentials-path", str(other)], env)
    assert raw["source_aws_access_key_id"] == "other-akid"
    # an explicit value beats the file even for secrets
    raw = resolve_raw(["--source-aws-secret-access-key", "arg-secret"], env)
    assert raw["source_aws_secret_access_key"] == "arg-secret"


def test_s3_credentials_alternative_keys(tmp_path: Path) -> None:
    creds = s3_dir(tmp_path, "s3", AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b", AWS_BUCKET="first",
                   AWS_S3_BUCKET="second", AWS_REGION="r1", AWS_DEFAULT_REGION="r2",
                   AWS_ENDPOINT_URL="http://one:1", AWS_S3_ENDPOINT="http://two:2")
    raw = resolve_raw(["--destination-type", "s3"], {"MODEL_SYNC_DESTINATION_S3_CREDENTIALS_PATH": str(creds)})
    assert raw["destination_aws_bucket"] == "first"
    assert raw["destination_aws_region"] == "r1"
    assert raw["destination_aws_endpoint"] == "http://one:1"
    assert raw["destination_aws_access_key_id"] == "a"  # trailing newline stripped


def test_destination_s3_from_file_only_validates(tmp_path: Path) -> None:
    creds = s3_dir(tmp_path, "s3", AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b", AWS_S3_BUCKET="bkt")
    env = {**BASE_ENV, "MODEL_SYNC_DESTINATION_TYPE": "s3", "MODEL_SYNC_DESTINATION_AWS_KEY": "out/m1",
           "MODEL_SYNC_DESTINATION_S3_CREDENTIALS_PATH": str(creds)}
    cfg = load_config([], env)
    assert isinstance(cfg.destination, S3Destination)
    assert cfg.destination.s3.bucket == "bkt"
    assert cfg.destination.s3.secret_access_key.get_secret_value() == "b"


def test_missing_credentials_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--source-s3-credentials-path .MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH.: "
                       "credentials folder not found"):
        resolve_raw([], {"MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH": str(tmp_path / "nope")})


def test_uri_credentials(tmp_path: Path) -> None:
    d = tmp_path / "uri"
    d.mkdir()
    (d / "URI").write_text("https://example.invalid/model.bin\n")
    env = {**BASE_ENV, "MODEL_SYNC_SOURCE_TYPE": "uri", "MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH": str(d)}
    cfg = load_config([], env)
    assert isinstance(cfg.source, UriSource)
    assert cfg.source.uri.get_secret_value() == "https://example.invalid/model.bin"
    # documented precedence: the explicit parameter beats the file
    cfg = load_config(["--source-uri", "https://example.invalid/other.bin"], env)
    assert isinstance(cfg.source, UriSource)
    assert cfg.source.uri.get_secret_value() == "https://example.invalid/other.bin"
    (d / "URI").unlink()
    with pytest.raises(ConfigError, match="URI credential file not found"):
        load_config([], env)


def _dockerconfig(tmp_path: Path, auths: dict[str, object], name: str = "dc.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps({"auths": auths}))
    return p


def test_dockerconfigjson_base64_plain_and_lookup(tmp_path: Path) -> None:
    b64 = base64.b64encode(b"robot:s3cr3t-pw").decode()
    path = _dockerconfig(tmp_path, {"127.0.0.1:5001": {"auth": b64, "email": "x@y"},
                                    "quay.io": {"auth": "plain:textpw"}})
    env = {**BASE_ENV, "MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH": str(path)}
    cfg = load_config([], env)
    assert isinstance(cfg.destination, OciDestination)
    assert cfg.destination.username == "robot"
    assert cfg.destination.password is not None
    assert cfg.destination.password.get_secret_value() == "s3cr3t-pw"
    assert cfg.destination.registry == "127.0.0.1:5001"  # derived from the URI
    assert cfg.destination.auths["quay.io"][0] == "plain"
    # explicit username/password beat the file
    cfg = load_config(["--destination-oci-username", "u2", "--destination-oci-password", "p2"], env)
    assert isinstance(cfg.destination, OciDestination)
    assert cfg.destination.username == "u2"


def test_dockerconfigjson_username_password_fields(tmp_path: Path) -> None:
    path = _dockerconfig(tmp_path, {"https://127.0.0.1:5001/v2/": {"username": "u", "password": "pw-field"}})
    cfg = load_config([], {**BASE_ENV, "MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH": str(path)})
    assert isinstance(cfg.destination, OciDestination)
    assert cfg.destination.username == "u"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"credsStore": "x"}', 'no "auths" object'),
        ('{"auths": {"127.0.0.1:5001": {"auth": "bm9jb2xvbg=="}}}', "is not base64 of user:password"),
        ('{"auths": {"other:1": {"auth": "dTpw"}}}', "no credentials for registry '127.0.0.1:5001'"),
    ],
)
def test_bad_dockerconfigjson(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "dc.json"
    path.write_text(content)
    env = {**BASE_ENV, "MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH": str(path)}
    with pytest.raises(ConfigError, match=message) as info:
        load_config([], env)
    assert "--destination-oci-credentials-path (MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH)" in str(info.value)
    assert info.value.exit_code == EXIT_CONFIG


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ("MODEL_SYNC_SOURCE_AWS_BUCKET", "--source-aws-bucket (MODEL_SYNC_SOURCE_AWS_BUCKET)"),
        ("MODEL_SYNC_DESTINATION_OCI_URI", "--destination-oci-uri (MODEL_SYNC_DESTINATION_OCI_URI)"),
        ("MODEL_SYNC_MODEL_ARTIFACT_ID", "--model-artifact-id (MODEL_SYNC_MODEL_ARTIFACT_ID)"),
        ("MODEL_SYNC_REGISTRY_SERVER_ADDRESS", "--registry-server-address (MODEL_SYNC_REGISTRY_SERVER_ADDRESS)"),
    ],
)
def test_missing_required_names_flag_and_env(drop: str, expected: str) -> None:
    env = {k: v for k, v in BASE_ENV.items() if k != drop}
    with pytest.raises(ConfigError, match=r"missing required parameter") as info:
        load_config([], env)
    assert expected in str(info.value)


def test_invalid_values() -> None:
    with pytest.raises(ConfigError, match=r"--source-type \(MODEL_SYNC_SOURCE_TYPE\): invalid value 'ftp'"):
        load_config(["--source-type", "ftp"], BASE_ENV)
    with pytest.raises(ConfigError, match="invalid boolean value 'maybe'"):
        load_config(["--destination-oci-enable-tls-verify", "maybe"], BASE_ENV)
    with pytest.raises(ConfigError, match="is not an integer"):
        load_config(["--registry-port", "http"], BASE_ENV)
    with pytest.raises(ConfigError, match="invalid command line"):
        load_config(["--no-such-flag", "1"], BASE_ENV)
    with pytest.raises(ConfigError, match="must be set together"):
        load_config(["--destination-oci-username", "u"], BASE_ENV)
    with pytest.raises(ConfigError, match="a token is required"):
        load_config(["--registry-is-secure", "true"], BASE_ENV)
    with pytest.raises(ConfigError, match="create_version.*--model-id"):
        load_config(["--model-upload-intent", "create_version"], BASE_ENV)
    with pytest.raises(ConfigError, match="--source-oci-uri"):
        load_config(["--source-type", "oci"], BASE_ENV)
    with pytest.raises(ConfigError, match="unsupported URI scheme"):
        load_config(["--source-type", "uri", "--source-uri", "ftp://x/y"], BASE_ENV)


def test_typed_result_and_extensions(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    cfg = load_config(["--source-type", "pvc", "--source-path", str(model), "--registry-port", "9000",
                       "--registry-server-address", "127.0.0.1"], BASE_ENV)
    assert cfg.registry.url == "http://127.0.0.1:9000"
    assert cfg.registry.is_secure is False
    cfg = load_config([], {**BASE_ENV, "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": "https://r.example:8443",
                           "MODEL_SYNC_REGISTRY_IS_SECURE": "yes", "MODEL_SYNC_REGISTRY_USER_TOKEN": "tok-123"})
    assert cfg.registry.url == "https://r.example:8443"  # a port in the address wins
    assert cfg.registry.token is not None
    assert isinstance(cfg.source, S3Source)
    hf = load_config(["--source-type", "uri", "--source-uri", "hf://org/model:rev"], BASE_ENV)
    assert isinstance(hf.source, UriSource)


def test_token_from_envvar_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("file-token-value\n")
    env = {**BASE_ENV, "MODEL_SYNC_REGISTRY_IS_SECURE": "true", "MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR": "MY_TOKEN",
           "MY_TOKEN": str(token)}
    cfg = load_config([], env)
    assert cfg.registry.token is not None
    assert cfg.registry.token.get_secret_value() == "file-token-value"
