"""``finmon run`` and ``finmon demo``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from monitor.errors import ConfigError, FinMonError
from monitor.ingest.throttle import ThrottleFilter
from monitor.settings import Role, Settings, load_settings

logger = logging.getLogger(__name__)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config (see configs/finmon.example.yaml)."),
]


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("kafka", "httpx", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # A broker outage repeats kafka-python's connection lines many times a second.
    for handler in logging.getLogger().handlers:
        handler.addFilter(ThrottleFilter("kafka"))


def settings_or_exit(config: Path | None, **overrides: object) -> Settings:
    """Load settings; on a bad value print the key and the fix, and exit with status 2."""
    try:
        return load_settings(
            config, overrides={k: v for k, v in overrides.items() if v is not None}
        )
    except ConfigError as exc:
        typer.echo(f"finmon: {exc}", err=True)
        raise typer.Exit(2) from exc


def run(
    config: ConfigOption = None,
    role: Annotated[
        Role | None, typer.Option(help="classify, aggregate, source or all (default: config)")
    ] = None,
) -> None:
    """Run the monitor daemon until SIGINT/SIGTERM."""
    from monitor.daemon import Daemon

    settings = settings_or_exit(config, role=role)
    setup_logging(settings.log_level)
    try:
        Daemon.from_settings(settings).run()
    except ConfigError as exc:
        typer.echo(f"finmon: {exc}", err=True)
        raise typer.Exit(2) from exc
    except FinMonError as exc:
        typer.echo(f"finmon: {exc}", err=True)
        raise typer.Exit(1) from exc


def demo(
    config: ConfigOption = None,
    duration_sec: Annotated[float, typer.Option(help="Stop after this many seconds.")] = 75.0,
    forever: Annotated[bool, typer.Option("--forever", help="Run until Ctrl-C.")] = False,
    retrain: Annotated[bool, typer.Option(help="Ignore the cached demo model.")] = False,
) -> None:
    """Everything on one machine: embedded broker, synthetic feed, monitor, webhook receiver."""
    from monitor.demo.run import run_demo

    settings = settings_or_exit(config)
    setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    alerts = run_demo(settings, duration_sec=None if forever else duration_sec, retrain=retrain)
    if not alerts:
        typer.echo("demo finished without an alert reaching the receiver", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``demo``."""
    app.command("run")(run)
    app.command("demo")(demo)
