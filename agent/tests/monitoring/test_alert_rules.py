"""The alert rules, checked and unit-tested by Prometheus's own promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.paths import REPOSITORY

HERE = Path(__file__).resolve().parent
RULES = REPOSITORY / "roles/monitoring/files/radio-alerts.yml"
RULE_TESTS = HERE / "radio-alerts-test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    assert executable, "promtool is missing: make setup installs Debian's prometheus"
    return subprocess.run(
        [executable, *args], cwd=HERE, capture_output=True, text=True, timeout=60, check=False
    )


def alerts() -> dict[str, dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for name in alerts():
        outcomes = {bool(case["exp_alerts"]) for case in cases if case["alertname"] == name}
        assert outcomes == {True, False}, f"{name}: needs a firing and a quiet case"


def test_every_alert_names_a_runbook_that_exists_and_is_documented() -> None:
    documented = set(
        re.findall(r"^\| `(Radio\w+)` \|", (REPOSITORY / "docs/metrics.md").read_text(), re.M)
    )
    assert documented == set(alerts())
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert (REPOSITORY / rule["annotations"]["runbook"]).is_file(), name


def test_a_broken_rule_fails_its_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: dead air on one node only must not page for the mount."""
    broken = RULES.read_text().replace(
        "and on (mount) max by (mount) (radio_mount_dead_air) == 1",
        "or on (mount) max by (mount) (radio_mount_dead_air) == 1",
    )
    assert broken != RULES.read_text()
    rules = tmp_path / "radio-alerts.yml"
    rules.write_text(broken)
    tests = tmp_path / "radio-alerts-test.yml"
    tests.write_text(RULE_TESTS.read_text().replace("../../../roles/monitoring/files/", ""))
    result = promtool("test", "rules", str(tests))
    assert result.returncode != 0
    assert "RadioDeadAir" in result.stdout + result.stderr
