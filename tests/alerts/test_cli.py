"""``finmon webhook-receiver`` as a real process, and ``finmon deploy-render``."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerts.notify import WebhookNotifier
from monitor.cli import build_app
from monitor.errors import ConfigError
from monitor.metrics import build_metrics
from tests.alerts.webhook_helpers import SECRET, FakeClock, event, settings

app, _ = build_app()

REPO = Path(__file__).resolve().parents[2]


def test_webhook_receiver_command_verifies_prints_and_stores(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from monitor.cli import main; main()", "webhook-receiver",
         "--port", "0", "--out", str(out), "--secret-file", str(secret_file)],
        env={"PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None and proc.stdout is not None
        banner = proc.stderr.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+/)", banner)
        assert match, banner
        assert SECRET not in banner
        notifier = WebhookNotifier(
            settings(match.group(1) + "desk"),
            tmp_path / "o.sqlite",
            metrics=build_metrics(),
            clock=FakeClock(),
            rng=random.Random(1),
        )
        notifier.submit(event("Dividend"))
        notifier.deliver_due()
        notifier.stop()
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(10)
    assert line.startswith("FIRING") and "key=Dividend" in line and "[signed" in line
    (stored,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert stored["labels"]["topic"] == "Dividend"
    assert stored["signed"] is True


def test_deploy_render_fills_templates(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["deploy-render", "--src", str(REPO / "deploy"), "--out", str(tmp_path),
         "--set", "FINMON_TARGET=10.1.2.3:9108"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    prometheus = (tmp_path / "prometheus" / "prometheus.yml").read_text()
    assert "targets: ['10.1.2.3:9108']" in prometheus
    assert str(tmp_path / "prometheus" / "rules") in prometheus
    assert "${" not in (tmp_path / "alertmanager" / "alertmanager.yml").read_text()


def test_deploy_render_names_a_missing_value(tmp_path: Path) -> None:
    from alerts.cli import render_deploy

    src = tmp_path / "src"
    src.mkdir()
    (src / "values.env").write_text("A=1\n")
    (src / "x.yml.tmpl").write_text("a: ${A}\nb: ${B}\n")
    with pytest.raises(ConfigError, match="B"):
        render_deploy(src, tmp_path / "out")


def test_receiver_secret_from_a_file_and_never_from_ps(tmp_path: Path) -> None:
    from alerts.cli import read_secret

    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    assert read_secret(None, path, "--secret") == SECRET
    assert read_secret("from-env", None, "--secret") == "from-env"
    assert read_secret("", None, "--secret") is None
    with pytest.raises(ConfigError, match="given twice"):
        read_secret("from-env", path, "--secret")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_secret(None, tmp_path / "empty", "--secret")
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret(None, tmp_path / "missing", "--secret")


def test_receiver_warns_about_a_secret_on_the_command_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["webhook-receiver", "--secret", "x", "--secret-file", str(tmp_path / "missing")]
    )
    assert result.exit_code == 2
    assert "visible to every user in `ps`" in result.output
    assert "--secret" in result.output and "given twice" in result.output
