"""Leader election and probe settings: upstream's flags, controller-runtime's defaults and checks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from model_registry_operator.cli import parser, run_overrides
from model_registry_operator.leadership import LeaderElectionError, _Watchdog, lease_namespace
from model_registry_operator.settings import LEADER_ELECTION_ID, OperatorSettings, load_settings, parse_duration

VARIABLES = (
    "LEADER_ELECT",
    "LEADER_ELECTION_ID",
    "LEADER_ELECTION_NAMESPACE",
    "LEADER_ELECTION_LEASE_DURATION",
    "LEADER_ELECTION_RENEW_DEADLINE",
    "LEADER_ELECTION_RETRY_PERIOD",
    "HEALTH_PROBE_HOST",
    "HEALTH_PROBE_PORT",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in VARIABLES:
        monkeypatch.delenv(var, raising=False)


def settings_from(*argv: str) -> OperatorSettings:
    return load_settings(run_overrides(parser().parse_args(["run", *argv])))


def test_defaults_are_upstreams() -> None:
    settings = settings_from()
    assert settings.leader_elect is False  # off, as upstream's --leader-elect
    assert settings.leader_election_id == LEADER_ELECTION_ID == "85f368d1.opendatahub.io"
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (15, 10, 2)
    assert (settings.health_host, settings.health_port) == ("0.0.0.0", 8081)  # noqa: S104


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADER_ELECT", "true")
    monkeypatch.setenv("HEALTH_PROBE_HOST", "10.1.2.3")
    monkeypatch.setenv("LEADER_ELECTION_LEASE_DURATION", "30s")
    assert settings_from().leader_elect is True
    assert settings_from().health_host == "10.1.2.3"
    settings = settings_from(
        "--leader-elect=false",
        "--health-probe-bind-address=:9440",
        "--leader-elect-lease-duration=20s",
        "--leader-elect-renew-deadline=15000ms",
        "--leader-elect-retry-period=1",
        "--leader-elect-resource-name=mine",
        "--leader-elect-resource-namespace=ops",
    )
    assert settings.leader_elect is False
    assert (settings.health_host, settings.health_port) == ("", 9440)  # every interface
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (20, 15, 1)
    assert (settings.leader_election_id, settings.leader_election_namespace) == ("mine", "ops")
    assert settings_from("--leader-elect").leader_elect is True
    assert settings_from("--health-probe-bind-address=[::1]:8081").health_host == "::1"


@pytest.mark.parametrize(
    "argv",
    [
        ["--leader-elect=maybe"],
        ["--health-probe-bind-address=8081"],
        ["--health-probe-bind-address=:0"],
        ["--leader-elect-retry-period=2x"],
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["run", *argv])
    assert exc.value.code == 2
    assert argv[0].split("=")[0] in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEADER_ELECTION_RENEW_DEADLINE": "15s"}, "must be shorter than LEADER_ELECTION_LEASE_DURATION"),
        ({"LEADER_ELECTION_RETRY_PERIOD": "9s"}, "must be longer than 1.2 x LEADER_ELECTION_RETRY_PERIOD"),
        (
            {"LEADER_ELECTION_LEASE_DURATION": "soon"},
            "LEADER_ELECTION_LEASE_DURATION: Value error, expected a duration",
        ),
    ],
)
def test_lease_timing_is_checked_at_start_up(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match="invalid operator settings") as exc:
        load_settings()
    assert message in str(exc.value)


def test_durations() -> None:
    assert [parse_duration(v) for v in ("15", "15s", "1500ms", "1m", "0.5s")] == [15, 15, 1.5, 60, 0.5]


def test_lease_namespace(tmp_path: Path) -> None:
    pod_namespace = tmp_path / "namespace"
    assert lease_namespace("ops", pod_namespace) == "ops"
    with pytest.raises(LeaderElectionError, match="LEADER_ELECTION_NAMESPACE"):
        lease_namespace("", pod_namespace)
    pod_namespace.write_text("model-registry-operator-system\n")
    assert lease_namespace("", pod_namespace) == "model-registry-operator-system"


def test_watchdog_fires_once_the_deadline_passes_unrenewed() -> None:
    fired = threading.Event()
    dog = _Watchdog(lambda _reason: fired.set(), "not renewed")
    dog.arm(time.monotonic() + 0.2)
    for _ in range(5):  # renewed in time: nothing happens
        time.sleep(0.1)
        dog.arm(time.monotonic() + 0.2)
    assert not fired.is_set()
    assert fired.wait(2)


def test_leader_gauge_is_on_the_default_registry() -> None:
    from prometheus_client import REGISTRY

    from model_registry_operator.leadership import LEADER

    LEADER.set(1)
    assert REGISTRY.get_sample_value("model_registry_operator_leader") == 1
    LEADER.set(0)
    assert REGISTRY.get_sample_value("model_registry_operator_leader") == 0
