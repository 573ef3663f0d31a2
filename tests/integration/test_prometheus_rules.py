"""The Prometheus config and rules in deploy/prometheus load, and the rules' unit tests pass (promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.runtime.settings import PROJECT_ROOT

PROMETHEUS_DIR = PROJECT_ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: run `make system-deps` (installs Debian's prometheus package)")
    return path


def run(promtool: str, *args: str | Path) -> None:
    result = subprocess.run(
        [promtool, *map(str, args)], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{result.stdout}{result.stderr}"


def test_config_is_valid(promtool: str) -> None:
    run(promtool, "check", "config", PROMETHEUS_DIR / "prometheus.yml")


def test_rules_are_valid(promtool: str) -> None:
    assert [p.name for p in RULE_FILES] == ["pipeline-alerts.yml", "recording.yml"]
    run(promtool, "check", "rules", *RULE_FILES)


def test_rule_unit_tests_pass(promtool: str) -> None:
    assert RULE_TESTS, "no promtool rule tests in deploy/prometheus/tests"
    run(promtool, "test", "rules", *RULE_TESTS)


def test_every_rule_has_a_unit_test() -> None:
    """Each alert is tested firing and silent (a near miss), each recording rule for its value."""
    rules = [rule for path in RULE_FILES for group in _load(path)["groups"] for rule in group["rules"]]
    cases = [case for path in RULE_TESTS for case in _load(path)["tests"]]
    alert_checks = [check for case in cases for check in case.get("alert_rule_test", [])]
    recorded = {check["expr"] for case in cases for check in case.get("promql_expr_test", [])}
    for rule in rules:
        if "alert" in rule:
            outcomes = {bool(c.get("exp_alerts")) for c in alert_checks if c["alertname"] == rule["alert"]}
            assert outcomes == {True, False}, f"{rule['alert']}: needs a firing case and a silent near miss"
        else:
            assert rule["record"] in recorded, f"recording rule {rule['record']} has no promql_expr_test"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())
