"""Bad input to the upload program: each example of the issue is exit code 2 with a message naming
the parameter, never a traceback; flags reach it through the console command and ``python -m``;
``--registry-log-level`` sets the log level; no secret, URL user info included, shows up in any
output at any level; a bearer token goes only over TLS unless told otherwise.

The program runs as a real process (``python -m model_registry_upload`` or the
``model-registry-operator`` console script) where the process boundary matters (argv, exit code,
stderr, running as an unprivileged user), in-process through ``main()`` otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from model_registry_upload.errors import EXIT_CONFIG, EXIT_OK, EXIT_REGISTRY
from tests.backends.oci import DistributionRegistry
from tests.backends.registry_server import RealRegistryServer
from tests.backends.s3 import ADMIN_KEY, ADMIN_SECRET, SeaweedS3

from .helpers import metadata_dir, placeholder_artifact, pull_model_layers, rest, run_upload, s3_upload, sha, write_dir

CONSOLE = str(Path(sys.executable).with_name("model-registry-upload"))
MODULE = [sys.executable, "-m", "model_registry_upload"]
# Root without the capabilities that let it read any file: a file of mode 0000 is unreadable to
# it, as a wrongly mounted Secret is to the upload Pod's unprivileged user.
WITHOUT_FILE_OVERRIDE = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
]
CLOSED = "http://127.0.0.1:9"  # discard port: nothing listens, nothing is ever contacted here


@dataclass
class Proc:
    code: int
    stdout: str
    stderr: str
    termination: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr + self.termination


def run_process(command: list[str], env: dict[str, str], workdir: Path, timeout: float = 60) -> Proc:
    """The upload program as a process with only ``env`` (plus PATH), as in its container."""
    term = workdir / "termination-log"
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TERMINATION_MESSAGE_PATH": str(term),
        "MODEL_SYNC_STORAGE_PATH": str(workdir / "scratch"),
        **env,
    }
    start = time.monotonic()
    done = subprocess.run(
        command,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,  # noqa: S603
        check=False,
    )
    elapsed = time.monotonic() - start
    text = term.read_text(errors="replace") if term.exists() else ""
    return Proc(done.returncode, done.stdout, done.stderr, text, elapsed)


def base_env(root: Path) -> dict[str, str]:
    """A complete configuration (PVC source, OCI destination, update_artifact) whose servers are
    never reached: each case breaks one parameter, which the program rejects first."""
    model = root / "model"
    model.mkdir(exist_ok=True)
    (model / "w.bin").write_bytes(b"w")
    return {
        "MODEL_SYNC_SOURCE_TYPE": "pvc",
        "MODEL_SYNC_SOURCE_PATH": str(model),
        "MODEL_SYNC_DESTINATION_OCI_URI": "127.0.0.1:9/models/m:v1",
        "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": "scratch",
        "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": CLOSED,
        "MODEL_SYNC_REGISTRY_IS_SECURE": "false",
        "MODEL_SYNC_MODEL_ARTIFACT_ID": "7",
    }


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


DIGITS_5001 = "1" * 5001


def s3_source(root: Path, key_file: bytes) -> dict[str, str]:
    creds = root / "s3-creds"
    creds.mkdir(exist_ok=True)
    (creds / "AWS_ACCESS_KEY_ID").write_text("akid")
    (creds / "AWS_SECRET_ACCESS_KEY").write_bytes(key_file)
    return {
        "MODEL_SYNC_SOURCE_TYPE": "s3",
        "MODEL_SYNC_SOURCE_AWS_BUCKET": "b",
        "MODEL_SYNC_SOURCE_AWS_KEY": "k",
        "MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH": str(creds),
    }


def metadata(root: Path, key: str, content: bytes) -> dict[str, str]:
    meta = root / "meta"
    meta.mkdir(exist_ok=True)
    (meta / key).write_bytes(content)
    return {"MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta)}


def uri_credentials(root: Path, content: bytes) -> dict[str, str]:
    creds = root / "uri-creds"
    creds.mkdir(exist_ok=True)
    (creds / "URI").write_bytes(content)
    return {"MODEL_SYNC_SOURCE_TYPE": "uri", "MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH": str(creds)}


def dockerconfig(root: Path, content: bytes) -> dict[str, str]:
    path = root / "dockerconfig.json"
    path.write_bytes(content)
    return {"MODEL_SYNC_DESTINATION_OCI_CREDENTIALS_PATH": str(path)}


def token_file(root: Path, content: bytes) -> dict[str, str]:
    path = root / "token"
    path.write_bytes(content)
    return {
        "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": "https://127.0.0.1:9",
        "MODEL_SYNC_REGISTRY_IS_SECURE": "true",
        "MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR": "TOKEN_PATH",
        "TOKEN_PATH": str(path),
    }


# (case id, env maker, the parameter the message must name)
BAD_INPUTS: list[tuple[str, Callable[[Path], dict[str, str]], str]] = [
    ("non_utf8_s3_credential_file", lambda r: s3_source(r, b"\xff\xfe secret"), "--source-s3-credentials-path"),
    ("non_utf8_metadata_file", lambda r: metadata(r, "RegisteredModel.name", b"\xffname"), "--metadata-configmap-path"),
    ("non_utf8_uri_credential_file", lambda r: uri_credentials(r, b"http://h/\xff"), "--source-uri-credentials-path"),
    (
        "non_utf8_dockerconfigjson",
        lambda r: dockerconfig(r, b'{"auths": {"\xff": {}}}'),
        "--destination-oci-credentials-path",
    ),
    ("non_utf8_token_file", lambda r: token_file(r, b"\xfftoken"), "--registry-user-token-envvar"),
    (
        "json_100k_deep_metadata",
        lambda r: metadata(r, "ModelArtifact.custom_properties", deep_json(100_000).encode()),
        "--metadata-configmap-path",
    ),
    (
        "json_100k_deep_dockerconfigjson",
        lambda r: dockerconfig(r, deep_json(100_000).encode()),
        "--destination-oci-credentials-path",
    ),
    (
        "integer_5001_digits_in_metadata",
        lambda r: metadata(r, "ModelArtifact.custom_properties", f'{{"n": {DIGITS_5001}}}'.encode()),
        "--metadata-configmap-path",
    ),
    ("integer_5001_digits_artifact_id", lambda r: {"MODEL_SYNC_MODEL_ARTIFACT_ID": DIGITS_5001}, "--model-artifact-id"),
    ("integer_5001_digits_part_size", lambda r: {"MODEL_SYNC_PART_SIZE": DIGITS_5001}, "--part-size"),
    ("timeout_nan", lambda r: {"MODEL_SYNC_TIMEOUT": "nan"}, "--timeout"),
    ("timeout_inf", lambda r: {"MODEL_SYNC_TIMEOUT": "inf"}, "--timeout"),
    ("timeout_negative", lambda r: {"MODEL_SYNC_TIMEOUT": "-1"}, "--timeout"),
    ("progress_interval_nan", lambda r: {"MODEL_SYNC_PROGRESS_INTERVAL": "NaN"}, "--progress-interval"),
    ("registry_port_out_of_range", lambda r: {"MODEL_SYNC_REGISTRY_PORT": "70000"}, "--registry-port"),
    ("registry_port_zero", lambda r: {"MODEL_SYNC_REGISTRY_PORT": "0"}, "--registry-port"),
    (
        "registry_address_port_out_of_range",
        lambda r: {"MODEL_SYNC_REGISTRY_SERVER_ADDRESS": "http://127.0.0.1:99999"},
        "--registry-server-address",
    ),
    (
        "s3_endpoint_port_out_of_range",
        lambda r: {**s3_source(r, b"k"), "MODEL_SYNC_SOURCE_AWS_ENDPOINT": "http://127.0.0.1:65536"},
        "--source-aws-endpoint",
    ),
    (
        "oci_destination_port_out_of_range",
        lambda r: {"MODEL_SYNC_DESTINATION_OCI_URI": "127.0.0.1:70000/models/m:v1"},
        "--destination-oci-uri",
    ),
    ("parallelism_one_billion", lambda r: {"MODEL_SYNC_PARALLELISM": "1000000000"}, "--parallelism"),
    ("superscript_two_as_artifact_id", lambda r: {"MODEL_SYNC_MODEL_ARTIFACT_ID": "²"}, "--model-artifact-id"),
    (
        "arabic_indic_digit_as_model_id",
        lambda r: {
            "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_version",
            "MODEL_SYNC_MODEL_ID": "٣",
            **metadata(r, "ModelVersion.name", b"v1"),
        },
        "--model-id",
    ),
    (
        "rocket_in_destination_image",
        lambda r: {"MODEL_SYNC_DESTINATION_OCI_URI": "quay.io/x/m:🚀"},
        "--destination-oci-uri",
    ),
    ("unknown_log_level", lambda r: {"MODEL_SYNC_REGISTRY_LOG_LEVEL": "LOUD"}, "--registry-log-level"),
    ("storage_path_not_writable", lambda r: {"MODEL_SYNC_STORAGE_PATH": "/proc/no-scratch-here"}, "--storage-path"),
]


@pytest.mark.parametrize(("case", "make", "param"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_exits_2_naming_the_parameter(
    case: str,
    make: Callable[[Path], dict[str, str]],
    param: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {**base_env(tmp_path), **make(tmp_path)}
    started = time.monotonic()
    r = run_upload(tmp_path, env, caplog, capsys)
    assert time.monotonic() - started < 10, "rejected at once, never a hang"
    assert r.code == EXIT_CONFIG, (case, r.termination)
    assert r.termination.startswith("configuration error: "), r.termination
    assert param in r.termination, r.termination
    assert param in r.logs
    assert "Traceback" not in r.logs, r.logs[-2000:]
    assert len(r.termination) < 1000  # a 5001-digit or 100k-deep value is never echoed whole
    if "secret" in case or "credential" in case:
        assert "secret" not in r.termination


def test_bad_input_as_a_real_process_never_prints_a_traceback(tmp_path: Path) -> None:
    """The same examples through ``python -m model_registry_upload``: stderr has the one
    error line, no traceback, and the exit code is 2 (a few, to bound the run time)."""
    for case, make, param in BAD_INPUTS[::4]:
        root = tmp_path / case
        root.mkdir()
        r = run_process(MODULE, {**base_env(root), **make(root)}, root)
        assert r.code == EXIT_CONFIG, (case, r.stderr)
        assert param in r.stderr, (case, r.stderr)
        assert "Traceback" not in r.output, (case, r.stderr)


@pytest.mark.parametrize("what", ["s3_credential_file", "metadata_file", "token_file", "dockerconfigjson"])
def test_unreadable_file_exits_2_naming_the_parameter(what: str, tmp_path: Path) -> None:
    """A file the upload program may not read (mode 0000, as a Secret mounted with a mode its
    user cannot read): exit 2 naming the parameter, no traceback. The real program runs without
    the capabilities that let root read any file."""
    world_dir = tmp_path
    env = base_env(world_dir)
    if what == "s3_credential_file":
        env.update(s3_source(world_dir, b"secret"))
        target, param = world_dir / "s3-creds" / "AWS_SECRET_ACCESS_KEY", "--source-s3-credentials-path"
    elif what == "metadata_file":
        env.update(metadata(world_dir, "RegisteredModel.name", b"m"))
        target, param = world_dir / "meta" / "RegisteredModel.name", "--metadata-configmap-path"
    elif what == "token_file":
        env.update(token_file(world_dir, b"token"))
        target, param = world_dir / "token", "--registry-user-token-envvar"
    else:
        env.update(dockerconfig(world_dir, b'{"auths": {}}'))
        target, param = world_dir / "dockerconfig.json", "--destination-oci-credentials-path"
    target.chmod(0)
    r = run_process([*WITHOUT_FILE_OVERRIDE, *MODULE], env, world_dir)
    assert r.code == EXIT_CONFIG, r.stderr
    assert param in r.stderr
    assert "Permission denied" in r.termination
    assert "Traceback" not in r.output


def test_parallelism_of_one_billion_is_refused_at_once(tmp_path: Path) -> None:
    """MODEL_SYNC_PARALLELISM=1000000000 hung (a thread pool of that size); now bounded (64)."""
    r = run_process(MODULE, {**base_env(tmp_path), "MODEL_SYNC_PARALLELISM": "1000000000"}, tmp_path)
    assert r.code == EXIT_CONFIG
    assert "--parallelism (MODEL_SYNC_PARALLELISM): must be between 1 and 64" in r.stderr
    assert r.seconds < 10


# -- the console command takes the program's flags ---------------------------------------------


@pytest.mark.parametrize("command", [[CONSOLE], MODULE], ids=["console", "python-m"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_through_the_console_command_and_python_m(command: list[str], flag: str, tmp_path: Path) -> None:
    """``model-registry-upload --help`` (and ``-h``) failed with "unrecognized arguments"."""
    r = run_process([*command, flag], {}, tmp_path)
    assert r.code == EXIT_OK, r.stderr
    assert "usage: model-registry-upload" in r.stdout
    for documented in ("--source-type", "--registry-log-level", "--registry-token-over-http", "MODEL_SYNC_"):
        assert documented in r.stdout


@pytest.mark.parametrize("separator", [[], ["--"]], ids=["flags", "after-double-dash"])
def test_flags_through_the_console_command_do_a_real_upload(
    separator: list[str],
    tmp_path: Path,
    oci_registry: DistributionRegistry,
    mr_server: RealRegistryServer,
) -> None:
    """``model-registry-upload --source-type pvc ...`` (and ``upload -- ...``): every
    parameter as a flag, no MODEL_SYNC_* variable at all; the model lands in the registry."""
    files = {"config.json": b"{}", "w/model.bin": os.urandom(4096)}
    src = write_dir(tmp_path / "pvc", files)
    tag = "dash" if separator else "flags"
    art = placeholder_artifact(mr_server.url, f"console-flags-{tag}")
    flags = [
        "--source-type",
        "pvc",
        "--source-path",
        str(src),
        "--destination-type",
        "oci",
        "--destination-oci-uri",
        f"{oci_registry.host}/models/console:{tag}",
        "--destination-oci-base-image",
        "scratch",
        "--destination-oci-enable-tls-verify",
        "false",
        "--registry-server-address",
        mr_server.url,
        "--registry-is-secure",
        "false",
        "--model-upload-intent",
        "update_artifact",
        "--model-artifact-id",
        art,
        "--storage-path",
        str(tmp_path / "scratch"),
        "--registry-log-level",
        "INFO",
    ]
    r = run_process([CONSOLE, *separator, *flags], {}, tmp_path)
    assert r.code == EXIT_OK, r.stderr
    assert json.loads(r.termination)["ModelArtifact"]["id"] == art
    pulled, _, _ = pull_model_layers(oci_registry, "models/console", tag)
    assert pulled == {rel: sha(data) for rel, data in files.items()}
    assert rest(mr_server.url, "GET", f"/model_artifacts/{art}")["state"] == "LIVE"


def test_an_unknown_flag_is_exit_2_not_unrecognized_arguments(tmp_path: Path) -> None:
    r = run_process([CONSOLE, "--source-type", "s3", "--no-such-flag", "x"], {}, tmp_path)
    assert r.code == EXIT_CONFIG
    assert "invalid command line: unrecognized arguments: --no-such-flag x" in r.stderr
    assert "Traceback" not in r.output


# -- --registry-log-level ------------------------------------------------------------------------


def test_registry_log_level_sets_the_programs_level(tmp_path: Path) -> None:
    """--registry-log-level did nothing (only an undocumented LOGLEVEL did): DEBUG shows debug
    lines, WARNING hides the INFO ones, the flag beats the variable, LOGLEVEL stays a fallback."""
    env = {**base_env(tmp_path), "MODEL_SYNC_MODEL_ARTIFACT_ID": "x"}  # a configuration error: quick
    levels = {
        ("--registry-log-level", "DEBUG"): "DEBUG",
        ("--registry-log-level", "10"): "DEBUG",
    }
    for flag, level in levels.items():
        r = run_process([*MODULE, *flag], {**env, "MODEL_SYNC_MODEL_ARTIFACT_ID": "7"}, tmp_path)
        assert f" - {level} - " in r.stderr, (flag, r.stderr)
    quiet = run_process([*MODULE, "--registry-log-level", "CRITICAL"], env, tmp_path)
    assert quiet.code == EXIT_CONFIG
    assert quiet.stderr == ""  # the ERROR line is below CRITICAL; the termination message remains
    assert "--model-artifact-id" in quiet.termination
    by_env = run_process(MODULE, {**env, "MODEL_SYNC_REGISTRY_LOG_LEVEL": "critical", "LOGLEVEL": "DEBUG"}, tmp_path)
    assert by_env.stderr == ""
    legacy = run_process(MODULE, {**env, "MODEL_SYNC_MODEL_ARTIFACT_ID": "7", "LOGLEVEL": "DEBUG"}, tmp_path)
    assert " - DEBUG - " in legacy.stderr
    default = run_process(MODULE, {**env, "MODEL_SYNC_MODEL_ARTIFACT_ID": "7"}, tmp_path)
    assert " - DEBUG - " not in default.stderr
    assert " - INFO - " in default.stderr


# -- no secret in any output, URL user info included ---------------------------------------------

URL_PASSWORD = "url-pass-Zq81x"  # noqa: S105 - test value
URL_USER = "url-user-Kp3"


def test_url_user_info_never_shows_at_any_level(
    tmp_path: Path,
    s3_server: SeaweedS3,
    oci_registry: DistributionRegistry,
    mr_server: RealRegistryServer,
) -> None:
    """``user:password@`` in the registry address and the S3 endpoint (the real SeaweedFS, model
    registry and distribution registry): the upload succeeds at DEBUG, and neither the password nor
    the user name shows in stdout, stderr or the termination message; a failing run (the registry
    address pointing nowhere) names the URL without its user info."""
    s3_upload(s3_server, "models", "userinfo", {"w.bin": b"u" * 3000})
    art = placeholder_artifact(mr_server.url, "url-userinfo")
    creds = tmp_path / "s3"
    creds.mkdir()
    (creds / "AWS_ACCESS_KEY_ID").write_text(ADMIN_KEY)
    (creds / "AWS_SECRET_ACCESS_KEY").write_text(ADMIN_SECRET)
    userinfo = f"{URL_USER}:{URL_PASSWORD}@"
    s3_endpoint = s3_server.endpoint.replace("://", f"://{userinfo}")
    registry = mr_server.url.replace("://", f"://{userinfo}")
    env = {
        "MODEL_SYNC_SOURCE_TYPE": "s3",
        "MODEL_SYNC_SOURCE_AWS_BUCKET": "models",
        "MODEL_SYNC_SOURCE_AWS_KEY": "userinfo",
        "MODEL_SYNC_SOURCE_AWS_ENDPOINT": s3_endpoint,
        "MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH": str(creds),
        "MODEL_SYNC_DESTINATION_OCI_URI": f"{oci_registry.host}/models/userinfo:v1",
        "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": "scratch",
        "MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY": "false",
        "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": registry,
        "MODEL_SYNC_REGISTRY_IS_SECURE": "false",
        "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
        "MODEL_SYNC_REGISTRY_LOG_LEVEL": "DEBUG",
    }
    ok = run_process(MODULE, env, tmp_path)
    assert ok.code == EXIT_OK, ok.stderr
    assert " - DEBUG - " in ok.stderr
    failed = run_process(
        MODULE, {**env, "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": f"http://{userinfo}127.0.0.1:9"}, tmp_path
    )
    assert failed.code == EXIT_REGISTRY, failed.stderr
    assert "http://***@127.0.0.1:9" in failed.termination
    for run in (ok, failed):
        for secret in (URL_PASSWORD, URL_USER, ADMIN_SECRET):
            assert secret not in run.output, f"{secret[:4]}... leaked"


# -- a bearer token only over TLS ------------------------------------------------------------------

TOKEN = "bearer-token-0123456789abcdef"  # noqa: S105 - test value


@pytest.mark.parametrize(
    "extra",
    [
        {"MODEL_SYNC_REGISTRY_USER_TOKEN": TOKEN},
        {"MODEL_SYNC_REGISTRY_IS_SECURE": "true", "MODEL_SYNC_REGISTRY_USER_TOKEN": TOKEN},
        {"MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR": "TOKEN_PATH"},
    ],
    ids=["token-insecure", "token-secure-flag-on-http", "token-file-insecure"],
)
def test_no_token_over_plain_http_unless_allowed(
    extra: dict[str, str],
    tmp_path: Path,
    oci_registry: DistributionRegistry,
    mr_server: RealRegistryServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A token for an http:// registry address (MODEL_SYNC_REGISTRY_IS_SECURE=false too) is exit 2
    naming --registry-token-over-http, before any request; with ``allow`` (the user's explicit
    opt-out) or ``mesh`` (an Istio sidecar encrypts the hop) the upload proceeds against the real
    registry server."""
    (tmp_path / "token").write_text(TOKEN)
    src = write_dir(tmp_path / "pvc", {"w.bin": b"t" * 100})
    art = placeholder_artifact(mr_server.url, f"token-http-{len(extra)}-{sorted(extra)[0][-5:].lower()}")
    env = {
        "MODEL_SYNC_SOURCE_TYPE": "pvc",
        "MODEL_SYNC_SOURCE_PATH": str(src),
        "MODEL_SYNC_DESTINATION_OCI_URI": f"{oci_registry.host}/models/token-http:v1",
        "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": "scratch",
        "MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY": "false",
        "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": mr_server.url,
        "MODEL_SYNC_REGISTRY_IS_SECURE": "false",
        "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
        "TOKEN_PATH": str(tmp_path / "token"),
        **extra,
    }
    refused = run_upload(tmp_path, env, caplog, capsys)
    assert refused.code == EXIT_CONFIG, refused.termination
    assert "--registry-token-over-http (MODEL_SYNC_REGISTRY_TOKEN_OVER_HTTP)" in refused.termination
    assert "plain http://" in refused.termination
    assert rest(mr_server.url, "GET", f"/model_artifacts/{art}")["uri"] == "PLACEHOLDER"
    for policy in ("allow", "mesh"):
        done = run_upload(tmp_path, {**env, "MODEL_SYNC_REGISTRY_TOKEN_OVER_HTTP": policy}, caplog, capsys)
        assert done.code == EXIT_OK, done.termination
        assert TOKEN not in done.logs
        assert TOKEN not in done.termination


def test_the_token_is_sent_over_https(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same token for an https:// address passes the check (and fails later, on the closed
    port, with the registry's exit code 3, not 2)."""
    env = {
        **base_env(tmp_path),
        "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": "https://127.0.0.1:9",
        "MODEL_SYNC_REGISTRY_USER_TOKEN": TOKEN,
    }
    r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_REGISTRY, r.termination
    assert TOKEN not in r.logs


def test_create_model_metadata_stays_valid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The checks above leave ordinary metadata alone: unicode names and nested properties of a
    sane depth pass the configuration (and fail on the closed registry port, exit 3)."""
    meta = metadata_dir(
        tmp_path / "meta",
        {"RegisteredModel.name": "modèle-ü", "ModelVersion.custom_properties": json.dumps({"a": [[1, [2]]]})},
    )
    env = {
        **base_env(tmp_path),
        "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_model",
        "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta),
    }
    r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_REGISTRY, r.termination
