"""Upstream's manager flags for the metrics endpoint (names, defaults, ``0`` turns it off, Go's
``--flag=false`` booleans), their variables, and ``--log-format json``."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from model_registry_devcluster.controlplane import kubeconfig_text
from model_registry_operator import cli
from model_registry_operator.kube import Kube
from model_registry_operator.observability import flags, logs
from model_registry_operator.observability.endpoint import MetricsEndpoint
from model_registry_operator.settings import OperatorSettings, load_settings
from tests.backends.process import free_port


def settings_of(*argv: str) -> OperatorSettings:
    args = cli.parser().parse_args(["run", *argv])
    return load_settings(flags.overrides(args))


def endpoint_of(settings: OperatorSettings) -> MetricsEndpoint | None:
    return MetricsEndpoint.from_settings(settings, Kube(None))  # type: ignore[arg-type]


def test_the_defaults_are_upstreams_https_on_8443_with_authentication() -> None:
    endpoint = endpoint_of(settings_of())
    assert endpoint is not None
    assert (endpoint.host, endpoint.port, endpoint.scheme) == (None, 8443, "https")
    assert endpoint.authorizer is not None
    assert endpoint.cert_file is None  # self-signed


def test_flags_as_upstream_manifests_write_them() -> None:
    endpoint = endpoint_of(
        settings_of(
            "--metrics-bind-address=127.0.0.1:9090",
            "--metrics-secure=false",
            "--log-format",
            "json",
        )
    )
    assert endpoint is not None
    assert (endpoint.host, endpoint.port, endpoint.scheme, endpoint.authorizer) == ("127.0.0.1", 9090, "http", None)
    assert settings_of("--log-format=json").log_format == "json"
    assert settings_of("--metrics-secure").metrics_secure is True
    assert settings_of("--metrics-secure=f").metrics_secure is False
    endpoint = endpoint_of(settings_of("--metrics-bind-address=[::1]:8443", "--metrics-cert-dir=/certs"))
    assert endpoint is not None
    assert endpoint.host == "::1"
    assert (str(endpoint.cert_file), str(endpoint.key_file)) == ("/certs/tls.crt", "/certs/tls.key")
    endpoint = endpoint_of(
        settings_of("--metrics-cert-dir=/certs", "--metrics-cert-name=cert.pem", "--metrics-key-name=key.pem")
    )
    assert endpoint is not None
    assert (str(endpoint.cert_file), str(endpoint.key_file)) == ("/certs/cert.pem", "/certs/key.pem")


def test_upstreams_zap_flags_start_the_operator_as_they_would_upstreams() -> None:
    """A Deployment written for upstream's manager may carry controller-runtime's zap flags."""
    settings = settings_of("--zap-log-level=debug", "--zap-encoder=json", "--zap-stacktrace-level=error")
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")
    assert settings_of("--zap-log-level", "error").log_level == "ERROR"
    assert settings_of("--zap-log-level=2").log_level == "DEBUG"
    assert settings_of("--zap-devel").log_level == "DEBUG"
    assert settings_of("--zap-devel=false").log_level == "INFO"
    assert settings_of("--zap-encoder=console").log_format == "text"
    assert settings_of("--zap-encoder=json", "--log-format=text").log_format == "text"  # ours win
    assert settings_of("--zap-time-encoding=iso8601").log_level == "INFO"


def test_a_bad_zap_level_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.parser().parse_args(["run", "--zap-log-level=loud"])
    assert exc.value.code == 2
    assert "--zap-log-level" in capsys.readouterr().err


def test_zero_turns_the_endpoint_off() -> None:
    assert endpoint_of(settings_of("--metrics-bind-address=0")) is None


def test_the_variables_stand_in_for_the_flags_which_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_BIND_ADDRESS", "0")
    monkeypatch.setenv("METRICS_SECURE", "false")
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert endpoint_of(settings_of()) is None
    settings = settings_of("--metrics-bind-address=:8080")
    assert (settings.metrics_bind_address, settings.metrics_secure, settings.log_format) == (":8080", False, "json")


@pytest.mark.parametrize("value", ["8443", "localhost", ":http", ":70000", "host:"])
def test_a_bad_address_is_a_start_up_error_naming_the_variable(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", f"--metrics-bind-address={value}"]) == 2
    err = capsys.readouterr().err
    assert "METRICS_BIND_ADDRESS" in err
    assert repr(value) in err


def test_a_bad_boolean_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.parser().parse_args(["run", "--metrics-secure=maybe"])
    assert exit_info.value.code == 2
    assert "invalid boolean value 'maybe'" in capsys.readouterr().err


def test_json_logs_are_one_object_per_line_with_the_exception(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("INFO", "json")
        log = logging.getLogger("model_registry_operator.test")
        log.info("registry %s/%s: Available=%s", "ns", "reg", "True")
        log.debug("not shown at INFO")
        try:
            raise ValueError("a bad\nvalue")
        except ValueError:
            log.exception("reconcile failed")
    finally:
        root.handlers[:], root.level = handlers, level
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"timestamp", "level", "logger", "message"}
    assert (first["level"], first["logger"], first["message"]) == (
        "INFO",
        "model_registry_operator.test",
        "registry ns/reg: Available=True",
    )
    assert first["timestamp"].endswith("+00:00")
    assert (second["level"], second["message"]) == ("ERROR", "reconcile failed")
    assert second["exception"].startswith("Traceback (most recent call last):")
    assert second["exception"].endswith("ValueError: a bad\nvalue")


def test_text_logs_stay_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("INFO", settings_of().log_format)
        logging.getLogger("x").warning("plain")
    finally:
        root.handlers[:], root.level = handlers, level
    assert capsys.readouterr().err.rstrip().endswith(" WARNING x: plain")


def kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig naming a server nobody answers: the operator fails before it needs one."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        kubeconfig_text("https://127.0.0.1:1", "t", tmp_path / "ca.crt", context="nowhere"), encoding="utf-8"
    )
    (tmp_path / "ca.crt").write_text("")
    return path


def run_operator(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_")}
    return subprocess.run(
        [sys.executable, "-m", "model_registry_operator", "run", "--kubeconfig", str(kubeconfig(tmp_path)), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_an_address_in_use_is_a_start_up_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_operator(tmp_path, f"--metrics-bind-address=127.0.0.1:{port}")
    assert result.returncode == 2, result.stderr
    assert f"error: metrics cannot listen on 127.0.0.1:{port} (METRICS_BIND_ADDRESS)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_certificate_is_a_start_up_error(tmp_path: Path) -> None:
    result = run_operator(
        tmp_path, f"--metrics-bind-address=127.0.0.1:{free_port()}", f"--metrics-cert-dir={tmp_path / 'none'}"
    )
    assert result.returncode == 2, result.stderr
    assert "error: the metrics serving certificate (METRICS_CERT_DIR)" in result.stderr
