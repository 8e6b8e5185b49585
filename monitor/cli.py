"""The ``finmon`` command. The serving and alerting sub-commands are registered here (run,
backtest, detect-bench, webhook-receiver, deploy-render, bench classify, bench sources, bench
ops); other installed packages add theirs through the ``finmon.commands`` entry-point group
(training's ``train``, ``evaluate``, ``bench train`` and ``demo``: ``pipelines.cli.register``),
so serving never imports training."""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points

import typer

from alerts.cli import register as register_alerts
from monitor.aggregate.cli import register as register_aggregate
from monitor.aggregate.scale_bench import register as register_aggregate_bench
from monitor.classify.cli import register as register_classify
from monitor.daemon_cli import register as register_daemon
from monitor.memory import bound_native_caches, limit_malloc_arenas
from monitor.ops_bench import register as register_ops_bench
from monitor.sources.cli import register as register_sources

COMMANDS_GROUP = "finmon.commands"


def build_app() -> tuple[typer.Typer, typer.Typer]:
    """The command with the serving and alerting sub-commands, those of every installed
    ``finmon.commands`` plugin, and its ``bench`` group."""
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
    register_aggregate(app)
    register_alerts(app)
    register_classify(bench)
    register_sources(bench)
    register_ops_bench(bench)
    register_aggregate_bench(bench)
    for plugin in entry_points(group=COMMANDS_GROUP):
        plugin.load()(app, bench)
    return app, bench


def main(app: typer.Typer | None = None) -> None:
    """Run ``app`` (the whole command when None) on ``sys.argv``."""
    # Idle OpenMP threads sleep instead of spinning, so the Kafka and owner threads (and other
    # processes on a shared CPU) get the cores. `finmon train` chooses its own policy from the CPU
    # load (pipelines/threads.py). Takes effect only before torch is imported, which the
    # sub-commands do lazily.
    trains = sys.argv[1:2] == ["train"] or sys.argv[1:3] == ["bench", "train"]
    if "torch" not in sys.modules and not trains:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        # Bounded memory in long-running serving processes (monitor/memory.py).
        bound_native_caches(os.environ)
        limit_malloc_arenas(os.environ)
    (app or build_app()[0])()
