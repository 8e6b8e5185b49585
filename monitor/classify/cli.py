"""The classify package's ``finmon`` sub-commands: ``bench classify`` and ``bench e2e``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from monitor.errors import FinMonError

if TYPE_CHECKING:
    from monitor.classify.quantize import Quantize

DEFAULT_SHARED_DATA = Path("../shared/data")


def register(bench: typer.Typer) -> None:
    """Add ``classify`` and ``e2e`` to the ``finmon bench`` group."""

    @bench.command("classify")
    def bench_classify(  # noqa: PLR0917 - typer maps options to parameters
        model: Annotated[Path, typer.Option("--model", help="Exported FinMon model directory.")],
        device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "cpu",
        n: Annotated[int, typer.Option("--n", min=8, help="Texts per configuration.")] = 1000,
        quantize: Annotated[
            str, typer.Option("--quantize", help="Engine precision: none, int8, bf16 or auto.")
        ] = "auto",
        shared_data: Annotated[
            Path, typer.Option("--shared-data", help="Labelled sets; synthetic when absent.")
        ] = DEFAULT_SHARED_DATA,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        compare: Annotated[
            list[Path] | None,
            typer.Option(
                "--compare",
                help="Other exported models (repeatable): run them and --model through the "
                "engine side by side instead of the pipeline comparison.",
            ),
        ] = None,
    ) -> None:
        """Engine vs transformers.pipeline (batch 1 and 32) on the same texts: texts/s, ratios.
        With --compare: several models through the engine side by side."""
        from monitor.classify.bench import (
            compare_models,
            format_comparison,
            format_report,
            run_bench,
        )

        precisions = ("none", "int8", "bf16", "auto")
        if quantize not in precisions or device not in ("cpu", "cuda", "auto"):
            raise typer.BadParameter("--quantize none|int8|bf16|auto, --device cpu|cuda|auto")
        q: Quantize = quantize  # type: ignore[assignment]
        data = shared_data if shared_data.is_dir() else None
        try:
            if compare:
                result = compare_models(
                    [model, *compare], device=device, n=n, quantize=q, shared_data=data
                )
            else:
                result = run_bench(model, device=device, n=n, quantize=q, shared_data=data)
        except FinMonError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        text = format_comparison(result) if compare else format_report(result)
        typer.echo(json.dumps(result) if as_json else text)

    @bench.command("e2e")
    def bench_e2e(  # noqa: PLR0917 - typer maps options to parameters
        model: Annotated[Path, typer.Option("--model", help="Exported FinMon model directory.")],
        n: Annotated[int, typer.Option("--n", min=64, help="Items per repeat.")] = 6000,
        repeats: Annotated[int, typer.Option("--repeats", min=1, help="Rounds.")] = 1,
        latency_sec: Annotated[
            float, typer.Option("--latency-sec", min=0, help="Seconds fed at half rate.")
        ] = 10.0,
        device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "cpu",
        shared_data: Annotated[
            Path, typer.Option("--shared-data", help="Tweet texts; synthetic when absent.")
        ] = DEFAULT_SHARED_DATA,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """The classify role on the embedded broker vs the engine alone: ratio, latency, stages."""
        from monitor.classify.bench_e2e import E2EPlan, format_e2e_report, run_e2e_bench

        if device not in ("cpu", "cuda", "auto"):
            raise typer.BadParameter("--device cpu|cuda|auto")
        plan = E2EPlan(n=n, repeats=repeats, latency_sec=latency_sec, device=device)
        try:
            result = run_e2e_bench(
                model, plan=plan, shared_data=shared_data if shared_data.is_dir() else None
            )
        except FinMonError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        typer.echo(json.dumps(result) if as_json else format_e2e_report(result))
