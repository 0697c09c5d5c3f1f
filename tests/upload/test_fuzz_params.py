"""Fuzz of the upload program's parameters: hostile values (injection strings, unicode, lengths,
wrong types, numbers at and past every limit, URLs carrying a secret, broken metadata files) for
random parameters, given as environment variables, ``--flag value`` or ``--flag=value``.

Every example goes through the program's own configuration steps in-process (log level,
``load_config``, the metadata directory): the outcome is a configuration or a
:class:`ConfigError` whose message names a parameter and, once redacted as the program writes
it, holds no secret; anything else (a traceback) fails. A deterministic sample also runs as the
real process: exit code 2 with the parameter named, or 3 (the registry it points at, a closed
port, does not answer), never a traceback, never the secret. Deterministic in CI
(``derandomize=True``), 500 examples in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_registry_upload import redact
from model_registry_upload.config import (
    MAX_PARALLELISM,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    PARAMS,
    PARAMS_BY_NAME,
    UploadConfig,
    load_config,
    log_level,
    register_given_secrets,
)
from model_registry_upload.errors import EXIT_CONFIG, EXIT_REGISTRY, ConfigError
from model_registry_upload.metadata import load_metadata

SECRET = "fuzz-secret-Vw93kQ"  # noqa: S105 - test value: the registry token, and URL passwords
CLOSED_HOST = "127.0.0.1:9"

INJECTIONS = [
    "$(MODEL_SYNC_REGISTRY_USER_TOKEN)",
    "$$(X)",
    "${HOME}",
    "`id`",
    "; rm -rf /",
    "a\n--source-type\ns3",
    "x\r\nHost: evil",
    "' OR 1=1 --",
    "../../../../etc/passwd",
    "/etc/shadow",
    "a@tcp(evil.example:3306)/mr?x=",
    "pg.db.svc/model_registry?sslmode=disable&application_name=",
    "{{ 7*7 }}",
    "%s%s%n",
    "a: b",
    "- --evil",
    "\u202egnp.exe",
    "\ufeff",
    "²",
    "٣",
    "🚀",
    "ｆｕｌｌ",
    "e\u0301",
    "\t",
    " ",
    "",
    "-",
    "--",
    "-h",
]
NUMBERS = [
    "0",
    "-0",
    "1",
    "-1",
    "4",
    "63",
    str(MAX_PARALLELISM),
    str(MAX_PARALLELISM + 1),
    "1000000000",
    str(MIN_PART_SIZE - 1),
    str(MIN_PART_SIZE),
    str(MAX_PART_SIZE),
    str(MAX_PART_SIZE + 1),
    "65535",
    "65536",
    "70000",
    "86400",
    "86401",
    "9223372036854775807",
    "99999999999999999999",
    "1e309",
    "-1e309",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "0.0",
    "1e-300",
    "0x10",
    "1_000",
    "+5",
    " 7 ",
    "7.0",
    "true",
    "yes",
    "maybe",
    "{}",
    "[]",
    "null",
    "10",
    "50",
    "51",
    "DEBUG",
    "debug",
    "LOUD",
]
URLS = [
    f"http://user:{SECRET}@{CLOSED_HOST}/m",
    f"https://{SECRET}@{CLOSED_HOST}",
    f"http://u:{SECRET}@[::1]:99999/",
    f"http://u:{SECRET}@{CLOSED_HOST}:0/",
    f"http://{CLOSED_HOST}/x?sig={SECRET}",
    "http://[::1",
    "http://",
    "https://:9",
    "ftp://h/x",
    "hf://org/model:rev",
    "http://127.0.0.1:99999",
    "https://a..b",
    "//h/x",
    "quay.io/x:🚀",
    f"{CLOSED_HOST}/models/m:v1",
    "Quay.IO/Org/M:v1",
    "localhost:70000/m:v1",
    "x/y@sha256:zz",
]
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
HOSTILE = st.one_of(
    st.sampled_from(INJECTIONS),
    st.sampled_from(NUMBERS),
    st.sampled_from(URLS),
    _TEXT,
    st.builds(lambda n: "9" * n, st.integers(1, 6000)),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "/", ".", ":", "$", "%", "é", "🚀"]), st.integers(250, 20000)),
)
FORMS = st.sampled_from(["env", "flag", "flag="])
MUTATION = st.tuples(st.sampled_from([p.name for p in PARAMS]), HOSTILE, FORMS)

METADATA_KEYS = [
    "RegisteredModel.name",
    "RegisteredModel.custom_properties",
    "ModelVersion.custom_properties",
    "ModelArtifact.customProperties",
    "ModelVersion.name",
    ".hidden",
    "Other.key",
]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=10,
)
METADATA_CONTENT = st.one_of(
    st.binary(max_size=60),
    st.builds(lambda d: ("[" * d + "]" * d).encode(), st.integers(1, 100_000)),
    st.builds(lambda n: f'{{"n": {"7" * n}}}'.encode(), st.integers(1, 6000)),
    st.builds(lambda v: json.dumps({"p": v}).encode(), _JSON),
    st.builds(lambda v: json.dumps(v).encode(), _JSON),
    st.sampled_from([b'{"p": 1e400}', b'{"p": NaN}', b'{"p": {"metadataType": "Bogus"}}', b"\xff\xfe", b""]),
)
EXAMPLE = st.fixed_dictionaries(
    {
        "mutations": st.lists(MUTATION, min_size=1, max_size=4),
        "metadata": st.lists(st.tuples(st.sampled_from(METADATA_KEYS), METADATA_CONTENT), max_size=2),
    }
)


def base(root: Path) -> dict[str, str]:
    """A configuration the program accepts (create_model from a directory to an image), pointing at
    a closed port: nothing is ever contacted by the in-process part."""
    model = root / "model"
    model.mkdir(exist_ok=True)
    (model / "w.bin").write_bytes(b"w")
    meta = root / "meta"
    meta.mkdir(exist_ok=True)
    (meta / "RegisteredModel.name").write_text("fuzzed")
    return {
        "MODEL_SYNC_SOURCE_TYPE": "pvc",
        "MODEL_SYNC_SOURCE_PATH": str(model),
        "MODEL_SYNC_DESTINATION_OCI_URI": f"{CLOSED_HOST}/models/m:v1",
        "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": "scratch",
        "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": f"https://{CLOSED_HOST}",
        "MODEL_SYNC_REGISTRY_USER_TOKEN": SECRET,
        "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_model",
        "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta),
        "MODEL_SYNC_STORAGE_PATH": str(root / "scratch"),
    }


def build(example: dict[str, Any], root: Path) -> tuple[list[str], dict[str, str]]:
    env = base(root)
    argv: list[str] = []
    for name, value, form in example["mutations"]:
        param = PARAMS_BY_NAME[name]
        if form == "env":
            env[param.env] = value
        elif form == "flag":
            argv += [param.flag, value]
        else:
            argv.append(f"{param.flag}={value}")
    for key, content in example["metadata"]:
        (root / "meta" / key).write_bytes(content)
    return argv, env


def names_a_parameter(message: str) -> bool:
    return any(p.flag in message or p.env in message for p in PARAMS)


def verdict(argv: list[str], env: dict[str, str]) -> str | None:
    """The program's configuration steps: None when accepted, else the message it would write."""
    redact.clear_secrets()
    try:
        register_given_secrets(argv, env)  # what main() does first
        log_level(argv, env)
        cfg = load_config(argv, env)
        assert isinstance(cfg, UploadConfig)
        assert 1 <= cfg.parallelism <= MAX_PARALLELISM
        assert MIN_PART_SIZE <= cfg.part_size <= MAX_PART_SIZE
        assert 0 < cfg.timeout <= 86400
        load_metadata(cfg.metadata_path)
    except ConfigError as exc:
        message = redact.redact(f"configuration error: {exc}")
        assert names_a_parameter(message), message
        assert SECRET not in message, message
        assert len(message) < 20_000, "a hostile value is quoted shortened"
        return message
    return None


@settings(
    max_examples=500,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(example=EXAMPLE)
def test_fuzz_parameters_in_process(example: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="upload-fuzz-") as tmp:
        argv, env = build(example, Path(tmp))
        verdict(argv, env)


def test_fuzz_parameters_as_the_real_process() -> None:
    """20 examples of the same generator as real processes, 8 at a time (most wait on retries)."""
    samples: list[dict[str, Any]] = []

    @settings(
        max_examples=20,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(example=EXAMPLE)
    def collect(example: dict[str, Any]) -> None:
        samples.append(example)

    collect()
    assert len(samples) == 20

    def run(example: dict[str, Any]) -> tuple[dict[str, Any], str | None, subprocess.CompletedProcess[str], str]:
        with tempfile.TemporaryDirectory(prefix="upload-fuzz-proc-") as tmp:
            root = Path(tmp)
            argv, env = build(example, root)
            expected = verdict(argv, env)
            term = root / "termination-log"
            full = {"PATH": "/usr/bin:/bin", "TERMINATION_MESSAGE_PATH": str(term), **env}
            done = subprocess.run(
                [sys.executable, "-m", "model_registry_upload", *argv],  # noqa: S603
                env=full,
                cwd=root,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            return example, expected, done, term.read_text(errors="replace") if term.exists() else ""

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, samples))
    for example, expected, done, termination in results:
        output = done.stdout + done.stderr + termination
        context = f"{example['mutations']!r}: {termination[:300]}"
        assert "Traceback" not in output, context
        assert SECRET not in output, context
        assert done.returncode in (EXIT_CONFIG, EXIT_REGISTRY), context
        if expected is not None:
            assert done.returncode == EXIT_CONFIG, context
            assert termination == expected[:4096], context
        if done.returncode == EXIT_CONFIG:
            assert names_a_parameter(termination), context
    assert {code for _, _, done, _ in results for code in [done.returncode]} == {EXIT_CONFIG, EXIT_REGISTRY}
