"""The ``finmon`` command: the serving commands (``monitor.cli``), training's (``pipelines.cli``)
and ``finmon demo``, which needs both. Heavy modules (torch, the model, Kafka clients) are
imported by the commands themselves, when run."""

from __future__ import annotations

from typing import Annotated

import typer

from monitor import cli as serving
from monitor.daemon_cli import ConfigOption, settings_or_exit, setup_logging
from pipelines.cli import register as register_pipelines


def demo(
    config: ConfigOption = None,
    duration_sec: Annotated[float, typer.Option(help="Stop after this many seconds.")] = 75.0,
    forever: Annotated[bool, typer.Option("--forever", help="Run until Ctrl-C.")] = False,
    retrain: Annotated[bool, typer.Option(help="Ignore the cached demo model.")] = False,
) -> None:
    """Everything on one machine: embedded broker, synthetic feed, monitor, webhook receiver."""
    from monitor.demo.run import run_demo
    from pipelines.demo import ensure_demo_model

    settings = settings_or_exit(config)
    setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    model_dir = ensure_demo_model(settings, retrain=retrain, echo=typer.echo)
    duration = None if forever else duration_sec
    if not run_demo(settings, model_dir=model_dir, duration_sec=duration):
        typer.echo("demo finished without an alert reaching the receiver", err=True)
        raise typer.Exit(1)


app, bench = serving.build_app()
app.command("demo")(demo)
register_pipelines(app, bench)


def main() -> None:
    serving.main(app)
