"""Sub-commands of this package for the ``finmon`` CLI: ``backtest`` and ``detect-bench``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from monitor.errors import FinMonError
from monitor.settings import load_settings


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""

    @app.command("backtest")
    def backtest(  # noqa: PLR0917 - typer maps options to parameters
        input_file: Annotated[
            Path | None,
            typer.Option(
                "--input", help="Scored records or a timestamp,value series (CSV/JSONL/Parquet)."
            ),
        ] = None,
        labelled: Annotated[
            Path | None,
            typer.Option(
                "--labelled",
                help="A folder of labelled series (NAB layout): recall and false alarms per "
                "series-week, beside a rolling z-score.",
            ),
        ] = None,
        config: Annotated[Path | None, typer.Option("--config", help="FinMon YAML config.")] = None,
        plot: Annotated[
            Path | None,
            typer.Option("--plot", help="Write a PNG of series, baseline and alert spans."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object per alert.")] = False,
        values: Annotated[
            bool,
            typer.Option(
                "--values",
                help="A timestamp,value series of values, not counts: the two-sided value rule "
                "(docs/detection.md) instead of the volume rule.",
            ),
        ] = False,
    ) -> None:
        """Print the alerts the aggregator and detectors would have raised on a recorded stream."""
        from monitor.aggregate.backtest import format_json, format_table, run_backtest

        if (input_file is None) == (labelled is None):
            raise typer.BadParameter("give exactly one of --input FILE or --labelled DIR")
        try:
            settings = load_settings(config)
            if labelled is not None:
                from monitor.aggregate.labelled import evaluate_labelled

                typer.echo(json.dumps(evaluate_labelled(labelled, settings.aggregate), indent=2))
                return
            assert input_file is not None
            result = run_backtest(input_file, settings.aggregate, values=values)
        except FinMonError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        typer.echo(format_json(result) if as_json else format_table(result))
        if plot is not None:
            from monitor.aggregate.plot import plot_backtest

            typer.echo(f"plot written to {plot_backtest(result, plot)}", err=True)

    @app.command("detect-bench")
    def detect_bench(
        config: Annotated[Path | None, typer.Option("--config", help="FinMon YAML config.")] = None,
        seeds: Annotated[int, typer.Option(help="Simulated weeks per preset.")] = 20,
        first_seed: Annotated[int, typer.Option(help="Seed of the first week.")] = 100,
        preset: Annotated[
            list[str] | None,
            typer.Option(
                help="flat, diurnal20, thin40, thin, syndication, drift or market (repeatable)."
            ),
        ] = None,
        replay: Annotated[
            bool, typer.Option(help="Also replay a week item by item, with and without a restart.")
        ] = True,
    ) -> None:
        """Detection quality on simulated weeks (flat and 20x night drop) and the restart check."""
        from monitor.aggregate.bench import PRESETS, bench_detection, restart_check

        presets = tuple(preset or ("flat", "diurnal20"))
        unknown = sorted(set(presets) - set(PRESETS))
        if unknown:
            raise typer.BadParameter(f"unknown preset(s) {unknown}; choose from {sorted(PRESETS)}")
        settings = load_settings(config).aggregate
        weeks = range(first_seed, first_seed + seeds)
        report = {"detection": bench_detection(settings, weeks, presets)}
        if replay:
            report["restart"] = restart_check(settings, seed=first_seed)
        typer.echo(json.dumps(report, indent=2))
