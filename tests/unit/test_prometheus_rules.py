"""config/prometheus: the PrometheusRule's groups pass ``promtool check rules`` and the rule unit
tests of tests/unit/prometheus/alerts_test.yaml (series that fire each alert and series that must
not); every alert is tested, and every series the rules read is one the operator exports.
promtool comes from Debian's prometheus package (hack/install-promtool.sh, run by `make deps`);
without it these tests fail, naming the fix."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.backends.process import cache_bin

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "config" / "prometheus"
RULE_TESTS = Path(__file__).parent / "prometheus" / "alerts_test.yaml"


@pytest.fixture(scope="module")
def promtool() -> str:
    cached = cache_bin() / "promtool"
    found = str(cached) if cached.is_file() else shutil.which("promtool")
    if found is None:
        pytest.fail(f"promtool not found (looked in {cached} and PATH): run `make deps` (hack/install-promtool.sh)")
    return found


def prometheus_rule() -> dict[str, Any]:
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all((PROMETHEUS / "alerts.yaml").read_text())}
    rule: dict[str, Any] = docs["PrometheusRule"]
    return rule


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The PrometheusRule's groups as a Prometheus rule file, beside the rule tests that load it."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(prometheus_rule()["spec"], sort_keys=False))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    return tmp_path


def run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_the_rules_pass_promtool_check(promtool: str, rules_dir: Path) -> None:
    result = run(promtool, "check", "rules", "rules.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_the_rule_unit_tests_pass(promtool: str, rules_dir: Path) -> None:
    result = run(promtool, "test", "rules", RULE_TESTS.name, cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_rule_fails_its_unit_tests(promtool: str, rules_dir: Path) -> None:
    """The unit tests can fail: a registry alert that fires at once, without its 5 minutes."""
    rules = rules_dir / "rules.yaml"
    rules.write_text(rules.read_text().replace("for: 5m", "for: 0m", 1))
    result = run(promtool, "test", "rules", RULE_TESTS.name, cwd=rules_dir)
    assert result.returncode != 0
    assert "alertname: ModelRegistryUnavailable, time: 4m" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    alerts = {r["alert"] for group in prometheus_rule()["spec"]["groups"] for r in group["rules"]}
    firing: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
    assert firing == alerts
    assert silent == alerts


def test_the_rules_read_only_series_the_operator_exports() -> None:
    from prometheus_client import REGISTRY

    import model_registry_operator.observability.metrics  # noqa: F401  (registers the series)

    families = list(REGISTRY.collect())
    exported = {family.name for family in families} | {s.name for family in families for s in family.samples}
    exported |= {f"{family.name}_total" for family in families if family.type == "counter"}
    exported.add("model_registry_operator_leader")  # the leader election's gauge
    exprs = " ".join(r["expr"] for group in prometheus_rule()["spec"]["groups"] for r in group["rules"])
    read = set(re.findall(r"model_registry_operator_[a-z_]+", exprs))
    assert read
    assert read <= exported, read - exported


def test_the_kustomization_lists_the_monitor_and_the_rules() -> None:
    kustomization = yaml.safe_load((PROMETHEUS / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == ["alerts.yaml", "monitor.yaml"]
    monitor = yaml.safe_load((PROMETHEUS / "monitor.yaml").read_text())
    endpoint = monitor["spec"]["endpoints"][0]
    assert (endpoint["scheme"], endpoint["path"], endpoint["port"]) == ("https", "/metrics", "https")
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    service = yaml.safe_load((ROOT / "config" / "default" / "metrics_service.yaml").read_text())
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [p["name"] for p in service["spec"]["ports"]] == ["https"]
