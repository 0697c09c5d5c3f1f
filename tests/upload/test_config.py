"""Parameter resolution: args > env > credential files > defaults, and validation messages."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from model_registry_upload import redact
from model_registry_upload.config import (
    DEFAULT_BASE_IMAGE,
    PARAMS,
    OciDestination,
    OciSource,
    S3Destination,
    S3Source,
    UriSource,
    load_config,
    resolve_raw,
)
from model_registry_upload.errors import EXIT_CONFIG, ConfigError


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
    assert "registry_log_level" not in raw  # INFO, or the legacy LOGLEVEL variable
    assert raw["registry_token_over_http"] == "refuse"


def test_every_param_has_flag_and_env() -> None:
    for p in PARAMS:
        assert p.env == "MODEL_SYNC_" + p.flag[2:].replace("-", "_").upper()


def test_precedence_every_level(tmp_path: Path) -> None:
    creds = s3_dir(
        tmp_path,
        "s3",
        AWS_ACCESS_KEY_ID="file-akid",
        AWS_SECRET_ACCESS_KEY="file-secret",
        AWS_S3_BUCKET="file-bucket",
        AWS_DEFAULT_REGION="file-region",
        AWS_S3_ENDPOINT="http://file:1",
    )
    env = {
        "MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH": str(creds),
        "MODEL_SYNC_SOURCE_AWS_BUCKET": "env-bucket",
        "MODEL_SYNC_SOURCE_AWS_REGION": "env-region",
    }
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
    creds = s3_dir(
        tmp_path,
        "s3",
        AWS_ACCESS_KEY_ID="a",
        AWS_SECRET_ACCESS_KEY="b",
        AWS_BUCKET="first",
        AWS_S3_BUCKET="second",
        AWS_REGION="r1",
        AWS_DEFAULT_REGION="r2",
        AWS_ENDPOINT_URL="http://one:1",
        AWS_S3_ENDPOINT="http://two:2",
    )
    raw = resolve_raw(["--destination-type", "s3"], {"MODEL_SYNC_DESTINATION_S3_CREDENTIALS_PATH": str(creds)})
    assert raw["destination_aws_bucket"] == "first"
    assert raw["destination_aws_region"] == "r1"
    assert raw["destination_aws_endpoint"] == "http://one:1"
    assert raw["destination_aws_access_key_id"] == "a"  # trailing newline stripped


def test_destination_s3_from_file_only_validates(tmp_path: Path) -> None:
    creds = s3_dir(tmp_path, "s3", AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b", AWS_S3_BUCKET="bkt")
    env = {
        **BASE_ENV,
        "MODEL_SYNC_DESTINATION_TYPE": "s3",
        "MODEL_SYNC_DESTINATION_AWS_KEY": "out/m1",
        "MODEL_SYNC_DESTINATION_S3_CREDENTIALS_PATH": str(creds),
    }
    cfg = load_config([], env)
    assert isinstance(cfg.destination, S3Destination)
    assert cfg.destination.s3.bucket == "bkt"
    assert cfg.destination.s3.secret_access_key.get_secret_value() == "b"


def test_missing_credentials_folder(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match="--source-s3-credentials-path .MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH.: credentials folder not found",
    ):
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


@pytest.mark.parametrize("from_file", [False, True])
def test_source_uri_secrets_masked_a_plain_uri_named(tmp_path: Path, from_file: bool) -> None:
    """The password, a token as user name and a signed query of the source URI are masked in
    messages; a URI without any of them is not (an error must say which URL failed)."""

    def load(uri: str) -> None:
        redact.clear_secrets()
        if from_file:
            d = tmp_path / "uri"
            d.mkdir(exist_ok=True)
            (d / "URI").write_text(uri + "\n")
            load_config(
                [], {**BASE_ENV, "MODEL_SYNC_SOURCE_TYPE": "uri", "MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH": str(d)}
            )
        else:
            load_config(["--source-type", "uri", "--source-uri", uri], BASE_ENV)

    load("https://robot:pa55-w0rd-9@files.example/m.bin?sig=abcdef123456&x=1")
    masked = redact.redact("robot:pa55-w0rd-9 pa55-w0rd-9 abcdef123456 https://files.example/m.bin")
    assert masked == "*** *** *** https://files.example/m.bin"
    load("https://ghp-token-7731@files.example/m.bin")
    assert redact.redact("user ghp-token-7731") == "user ***"
    plain = "GET https://files.example/m.bin failed: HTTP 404; hf://org/model:main"
    load("https://files.example/m.bin")
    assert redact.redact(plain) == plain
    load("hf://org/model:main")
    assert redact.redact(plain) == plain


def _dockerconfig(tmp_path: Path, auths: dict[str, object], name: str = "dc.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps({"auths": auths}))
    return p


def test_dockerconfigjson_base64_plain_and_lookup(tmp_path: Path) -> None:
    b64 = base64.b64encode(b"robot:s3cr3t-pw").decode()
    path = _dockerconfig(
        tmp_path, {"127.0.0.1:5001": {"auth": b64, "email": "x@y"}, "quay.io": {"auth": "plain:textpw"}}
    )
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


@pytest.mark.parametrize("side", ["destination", "source"])
def test_oci_credentials_precedence_every_level(tmp_path: Path, side: str) -> None:
    """username / password of the OCI destination and source: args > env > dockerconfigjson > none."""
    host = "127.0.0.1:5001"
    path = _dockerconfig(tmp_path, {host: {"auth": base64.b64encode(b"file-user:file-pass").decode()}})
    flag, env_name = f"--{side}-oci", f"MODEL_SYNC_{side.upper()}_OCI"
    env = {**BASE_ENV, f"{env_name}_URI": f"{host}/models/m1:v1"}
    if side == "source":
        env["MODEL_SYNC_SOURCE_TYPE"] = "oci"
    with_file = {**env, f"{env_name}_CREDENTIALS_PATH": str(path)}
    with_env = {**with_file, f"{env_name}_USERNAME": "env-user", f"{env_name}_PASSWORD": "env-pass"}
    args = [f"{flag}-username", "arg-user", f"{flag}-password", "arg-pass"]

    def creds(argv: list[str], environ: dict[str, str]) -> tuple[str | None, str | None]:
        cfg = load_config(argv, environ)
        oci = cfg.source if side == "source" else cfg.destination
        assert isinstance(oci, OciSource if side == "source" else OciDestination)
        return oci.username, oci.password.get_secret_value() if oci.password else None

    assert creds([], env) == (None, None)  # default: anonymous
    assert creds([], with_file) == ("file-user", "file-pass")  # file > default
    assert creds([], with_env) == ("env-user", "env-pass")  # env > file
    assert creds(args, with_env) == ("arg-user", "arg-pass")  # args > env > file
    assert creds(args, with_file) == ("arg-user", "arg-pass")  # args > file
    # per parameter, as for the S3 keys: an explicit password beats the file's, the username stays
    assert creds([f"{flag}-password", "arg-pass"], with_file) == ("file-user", "arg-pass")
    assert creds([], {**with_file, f"{env_name}_PASSWORD": "env-pass"}) == ("file-user", "env-pass")
    # the credentials path itself follows args > env
    other = _dockerconfig(tmp_path, {host: {"auth": base64.b64encode(b"other-user:other-pass").decode()}}, "o.json")
    assert creds([f"{flag}-credentials-path", str(other)], with_file) == ("other-user", "other-pass")


def test_uri_credentials_precedence_every_level(tmp_path: Path) -> None:
    """The source URI: --source-uri > MODEL_SYNC_SOURCE_URI > the ``URI`` file > none."""
    d = tmp_path / "uri"
    d.mkdir()
    (d / "URI").write_text("https://file.example.invalid/model.bin\n")
    env = {**BASE_ENV, "MODEL_SYNC_SOURCE_TYPE": "uri"}
    with_file = {**env, "MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH": str(d)}
    with_env = {**with_file, "MODEL_SYNC_SOURCE_URI": "https://env.example.invalid/model.bin"}
    args = ["--source-uri", "https://arg.example.invalid/model.bin"]

    def uri(argv: list[str], environ: dict[str, str]) -> str:
        cfg = load_config(argv, environ)
        assert isinstance(cfg.source, UriSource)
        return cfg.source.uri.get_secret_value()

    with pytest.raises(ConfigError, match=r"missing required parameter.*--source-uri \(MODEL_SYNC_SOURCE_URI\)"):
        load_config([], env)  # no default
    assert uri([], with_file) == "https://file.example.invalid/model.bin"  # file > default
    assert uri([], with_env) == "https://env.example.invalid/model.bin"  # env > file
    assert uri(args, with_env) == "https://arg.example.invalid/model.bin"  # args > env > file
    # the credentials path itself follows args > env
    other = tmp_path / "uri2"
    other.mkdir()
    (other / "URI").write_text("https://other.example.invalid/model.bin")
    assert uri(["--source-uri-credentials-path", str(other)], with_file) == "https://other.example.invalid/model.bin"


def test_dockerconfigjson_username_password_fields(tmp_path: Path) -> None:
    path = _dockerconfig(tmp_path, {"https://127.0.0.1:5001/v2/": {"username": "u", "password": "pw-field"}})
    cfg = load_config([], {**BASE_ENV, "MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH": str(path)})
    assert isinstance(cfg.destination, OciDestination)
    assert cfg.destination.username == "u"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
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
    # Found by the parameter fuzz: an empty flag value skipped the check and failed in the typed config.
    with pytest.raises(
        ConfigError, match=r"--model-upload-intent \(MODEL_SYNC_MODEL_UPLOAD_INTENT\): invalid value ''"
    ):
        load_config(["--model-upload-intent", ""], BASE_ENV)
    with pytest.raises(ConfigError, match="invalid boolean value 'maybe'"):
        load_config(["--destination-oci-enable-tls-verify", "maybe"], BASE_ENV)
    with pytest.raises(ConfigError, match="is not a whole number"):
        load_config(["--registry-port", "http"], BASE_ENV)
    with pytest.raises(ConfigError, match="invalid command line"):
        load_config(["--no-such-flag", "1"], BASE_ENV)
    with pytest.raises(ConfigError, match="must be set together"):
        load_config(["--destination-oci-username", "u"], BASE_ENV)
    with pytest.raises(ConfigError, match="a token is required"):
        load_config(["--registry-is-secure", "true", "--registry-server-address", "https://127.0.0.1"], BASE_ENV)
    with pytest.raises(ConfigError, match="create_version.*--model-id"):
        load_config(["--model-upload-intent", "create_version"], BASE_ENV)
    with pytest.raises(ConfigError, match="--source-oci-uri"):
        load_config(["--source-type", "oci"], BASE_ENV)
    with pytest.raises(ConfigError, match="unsupported URI scheme"):
        load_config(["--source-type", "uri", "--source-uri", "ftp://x/y"], BASE_ENV)


def test_typed_result_and_extensions(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    cfg = load_config(
        [
            "--source-type",
            "pvc",
            "--source-path",
            str(model),
            "--registry-port",
            "9000",
            "--registry-server-address",
            "127.0.0.1",
        ],
        BASE_ENV,
    )
    assert cfg.registry.url == "http://127.0.0.1:9000"
    assert cfg.registry.is_secure is False
    cfg = load_config(
        [],
        {
            **BASE_ENV,
            "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": "https://r.example:8443",
            "MODEL_SYNC_REGISTRY_IS_SECURE": "yes",
            "MODEL_SYNC_REGISTRY_USER_TOKEN": "tok-123",
        },
    )
    assert cfg.registry.url == "https://r.example:8443"  # a port in the address wins
    assert cfg.registry.token is not None
    assert isinstance(cfg.source, S3Source)
    hf = load_config(["--source-type", "uri", "--source-uri", "hf://org/model:rev"], BASE_ENV)
    assert isinstance(hf.source, UriSource)


def test_token_from_envvar_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("file-token-value\n")
    env = {
        **BASE_ENV,
        "MODEL_SYNC_REGISTRY_IS_SECURE": "true",
        "MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR": "MY_TOKEN",
        "MY_TOKEN": str(token),
        "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": "https://127.0.0.1:8443",
    }
    cfg = load_config([], env)
    assert cfg.registry.token is not None
    assert cfg.registry.token.get_secret_value() == "file-token-value"


def test_registry_custom_ca_and_its_envvar(tmp_path: Path) -> None:
    """--registry-custom-ca beats --registry-custom-ca-envvar (the name of a variable holding the
    path); a missing bundle is reported under the parameter the path came from."""
    ca, other = tmp_path / "ca.pem", tmp_path / "other.pem"
    ca.write_text("ca")
    other.write_text("other")
    env = {
        **BASE_ENV,
        "MODEL_SYNC_REGISTRY_IS_SECURE": "true",
        "MODEL_SYNC_REGISTRY_USER_TOKEN": "tok-123",
        "MODEL_SYNC_REGISTRY_CUSTOM_CA_ENVVAR": "MR_CA",
        "MR_CA": str(other),
        "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": "https://127.0.0.1:8443",
    }
    assert load_config([], env).registry.custom_ca == other
    assert load_config(["--registry-custom-ca", str(ca)], env).registry.custom_ca == ca
    assert load_config([], {**env, "MODEL_SYNC_REGISTRY_IS_SECURE": "false"}).registry.custom_ca is None
    with pytest.raises(ConfigError) as info:
        load_config([], {**env, "MR_CA": str(tmp_path / "nope.pem")})
    assert str(info.value) == (
        f"--registry-custom-ca-envvar (MODEL_SYNC_REGISTRY_CUSTOM_CA_ENVVAR): CA bundle "
        f"{tmp_path / 'nope.pem'} (the value of environment variable MR_CA) not found"
    )
    with pytest.raises(ConfigError, match=r"^--registry-custom-ca \(MODEL_SYNC_REGISTRY_CUSTOM_CA\): CA bundle"):
        load_config(["--registry-custom-ca", str(tmp_path / "nope.pem")], env)
