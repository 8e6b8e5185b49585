"""The ``finmon`` command. Each package registers its own sub-commands."""

from __future__ import annotations

import os
import sys

import typer

from alerts.cli import register as register_alerts
from monitor.aggregate.cli import register as register_aggregate
from monitor.classify.cli import register as register_classify
from monitor.daemon_cli import register as register_daemon
from pipelines.cli import register as register_pipelines

app = typer.Typer(
    name="finmon",
    help="FinMon: streaming financial news sentiment monitor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench = typer.Typer(help="Benchmarks.", no_args_is_help=True)
app.add_typer(bench, name="bench")
register_daemon(app)
register_pipelines(app, bench)
register_aggregate(app)
register_alerts(app)
register_classify(bench)


def main() -> None:
    # Idle OpenMP threads sleep instead of spinning, so the Kafka and owner threads (and other
    # processes on a shared CPU) get the cores. `finmon train` chooses its own policy from the CPU
    # load (pipelines/threads.py). Takes effect only before torch is imported, which the
    # sub-commands do lazily.
    trains = sys.argv[1:2] == ["train"] or sys.argv[1:3] == ["bench", "train"]
    if "torch" not in sys.modules and not trains:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app()
