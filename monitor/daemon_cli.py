"""``finmon run`` (``finmon demo`` is registered by ``pipelines.cli``, which needs both sides)."""

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
    from monitor.ingest.kafka_io import require_broker

    settings = settings_or_exit(config, role=role)
    setup_logging(settings.log_level)
    try:
        # Before torch is imported and the model loads: no broker is said in seconds.
        require_broker(settings.kafka)
        from monitor.daemon import Daemon
        from monitor.memory import freeze_loaded_objects

        daemon = Daemon.from_settings(settings)
        freeze_loaded_objects()  # the loaded model, once: full collections stop stalling roles
        daemon.run()
    except ConfigError as exc:
        typer.echo(f"finmon: {exc}", err=True)
        raise typer.Exit(2) from exc
    except FinMonError as exc:
        typer.echo(f"finmon: {exc}", err=True)
        raise typer.Exit(1) from exc


def register(app: typer.Typer) -> None:
    """Add ``run``."""
    app.command("run")(run)
