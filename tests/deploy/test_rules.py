"""The shipped Prometheus rules: syntax (promtool check), behaviour (promtool test), coverage."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from alerts.cli import render_deploy
from tests.deploy.tools import RULE_TESTS, RULES, require

REQUIRED_ANNOTATIONS = {"summary", "description", "runbook"}


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((RULES / "finmon-alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_check_rules() -> None:
    promtool = require("promtool")
    result = _run(promtool, "check", "rules", *map(str, sorted(RULES.glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = require("promtool")
    result = _run(promtool, "test", "rules", *map(str, sorted(RULE_TESTS.glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout + result.stderr


def test_rendered_prometheus_config_is_valid(tmp_path: Path) -> None:
    promtool = require("promtool")
    render_deploy(RULES.parents[1], tmp_path, {"FINMON_TARGET": "127.0.0.1:19108"})
    config = tmp_path / "prometheus" / "prometheus.yml"
    result = _run(promtool, "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "127.0.0.1:19108" in config.read_text()


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS.glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alert_rules()}
    assert names - fires == set(), "alerts without a firing test"
    assert names - quiet == set(), "alerts without a not-firing test"


def test_every_alert_has_for_routing_labels_and_annotations() -> None:
    for rule in _alert_rules():
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["category"] in {"sentiment", "pipeline"}, rule["alert"]
        assert rule["annotations"].keys() >= REQUIRED_ANNOTATIONS, rule["alert"]
        if rule["labels"]["category"] == "sentiment":
            assert "topic" in rule["annotations"], rule["alert"]
        else:
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
