"""The parameter sources (pydantic-settings' CLI, env and secrets-directory sources) keep the
program's own rules: every flag and variable in ``--help``, exact variable names, a value given
stays the string it was, an empty credential file falls through to the key's other name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from model_registry_upload.config import PARAMS, load_config, resolve_raw
from model_registry_upload.errors import ConfigError

from .test_config import BASE_ENV, s3_dir


def test_help_lists_every_parameter_with_its_variable() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "model_registry_upload", "-h"], capture_output=True, text=True, check=True
    ).stdout
    # argparse wraps a line between the help and "[env: NAME]": compare without the wrapping
    flat = " ".join(out.split())
    for p in PARAMS:
        assert f"{p.flag} str" in flat, p.flag
        assert p.env in flat, p.env
    assert "--source-type str one of s3, oci, uri, pvc (default: s3) [env: MODEL_SYNC_SOURCE_TYPE]" in flat
    assert "(default: )" not in flat  # a parameter without a default shows none
    assert "credential files" in flat  # the precedence


def test_only_the_exact_variable_names_count() -> None:
    raw = resolve_raw([], {"model_sync_source_type": "uri", "Model_Sync_Timeout": "1"})
    assert raw["source_type"] == "s3"
    assert raw["timeout"] == "60"


def test_a_flag_value_null_stays_a_value() -> None:
    """The CLI source reads ``null`` as "unset" by default; here it is the string given."""
    assert resolve_raw(["--model-id", "null"], {})["model_id"] == "null"
    with pytest.raises(ConfigError, match=r"^--model-artifact-id \(MODEL_SYNC_MODEL_ARTIFACT_ID\): 'null' is not"):
        load_config(["--model-artifact-id", "null"], BASE_ENV)


def test_an_empty_flag_value_is_not_the_variable() -> None:
    """An empty variable counts as unset; an empty flag value is a value (and an error where one is checked)."""
    assert resolve_raw([], {"MODEL_SYNC_SOURCE_TYPE": ""})["source_type"] == "s3"
    assert resolve_raw(["--source-type", ""], {"MODEL_SYNC_SOURCE_TYPE": "uri"})["source_type"] == ""


def test_an_empty_credential_file_falls_through_to_the_other_name(tmp_path: Path) -> None:
    creds = s3_dir(tmp_path, "s3", AWS_REGION="", AWS_DEFAULT_REGION="eu-1", AWS_BUCKET="", AWS_S3_BUCKET="bkt")
    raw = resolve_raw([], {"MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH": str(creds)})
    assert raw["source_aws_region"] == "eu-1"
    assert raw["source_aws_bucket"] == "bkt"
    assert "source_aws_access_key_id" not in raw
    # file names are exact, as Secret keys are
    lower = s3_dir(tmp_path, "lower", aws_access_key_id="x")
    assert "source_aws_access_key_id" not in resolve_raw([], {"MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH": str(lower)})


def test_an_empty_uri_file_is_no_uri(tmp_path: Path) -> None:
    d = tmp_path / "uri"
    d.mkdir()
    (d / "URI").write_text("\n")
    env = {**BASE_ENV, "MODEL_SYNC_SOURCE_TYPE": "uri", "MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH": str(d)}
    with pytest.raises(ConfigError, match=r"missing required parameter.*--source-uri \(MODEL_SYNC_SOURCE_URI\)"):
        load_config([], env)
