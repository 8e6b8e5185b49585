"""The shipped Grafana dashboard: valid JSON, valid PromQL, and only metrics FinMon exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from monitor.metrics import Metrics
from monitor.sources import SourceBoard
from tests.alerts.webhook_helpers import spike_aggregator
from tests.deploy.tools import DEPLOY, RULES, require

DASHBOARD = DEPLOY / "grafana" / "finmon-dashboard.json"
METRIC = re.compile(r"\b(finmon[:_][a-z0-9_:]+)")


def _exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _exported_names(metrics: Metrics) -> set[str]:
    agg, _, _ = spike_aggregator(metrics)
    metrics.register_collector(agg.collector())
    metrics.register_collector(SourceBoard().collector())
    names = {s.name for fam in metrics.registry.collect() for s in fam.samples}
    for fam in metrics.registry.collect():  # labelled families with no child yet have no samples
        names |= {fam.name, fam.name + "_total" if fam.type == "counter" else fam.name}
    for rules in RULES.glob("*.yml"):
        for group in yaml.safe_load(rules.read_text())["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


def test_dashboard_uses_only_exported_metrics(metrics: Metrics) -> None:
    exported = _exported_names(metrics)
    used = {m for e in _exprs() for m in METRIC.findall(e)}
    assert used, "the dashboard queries nothing"
    unknown = {m for m in used if m not in exported and m.removesuffix("_bucket") not in exported}
    assert not unknown, f"dashboard queries metrics FinMon does not export: {sorted(unknown)}"


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    promtool = require("promtool")
    rules = [
        {
            "record": f"finmon_dashboard:check_{i}",
            "expr": e.replace("$job", ".*").replace("$topic", ".*"),
        }
        for i, e in enumerate(_exprs())
    ]
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
