"""`finmon run` and `finmon demo` from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import build_app
from monitor.daemon import Daemon
from monitor.demo.run import run_demo
from monitor.errors import ConfigError
from monitor.settings import Settings, load_settings

app, _ = build_app()

runner = CliRunner()


def test_bad_config_value_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("kafka:\n  max_poll_interval_ms: 5\n")
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "kafka.max_poll_interval_ms" in result.output


def test_classify_role_without_model_is_a_config_error(tmp_path: Path) -> None:
    settings = load_settings(None, environ={}, overrides={"role": "classify"})
    with pytest.raises(ConfigError) as info:
        Daemon.from_settings(settings)
    assert info.value.key == "model.path"


def test_source_role_without_sources_is_a_config_error() -> None:
    settings = load_settings(None, environ={}, overrides={"role": "source"})
    with pytest.raises(ConfigError) as info:
        Daemon.from_settings(settings)
    assert info.value.key == "sources"


@pytest.mark.integration
@pytest.mark.slow
def test_demo_runs_to_completion_with_a_configured_model(tiny_model_dir: Path) -> None:
    lines: list[str] = []
    settings = Settings(model={"path": str(tiny_model_dir), "device": "cpu"})
    run_demo(settings, model_dir=tiny_model_dir, duration_sec=12, echo=lines.append)
    progress = [line for line in lines if "scored=" in line]
    assert progress, lines
    last = progress[-1]
    fed = int(last.split("fed=")[1].split()[0])
    sourced = int(last.split("sourced=")[1].split()[0])  # through the source role's feed poller
    scored = int(last.split("scored=")[1].split()[0])
    assert fed > 100
    assert sourced > 0
    assert scored > 0
    assert any("alert notification(s) reached" in line for line in lines)
