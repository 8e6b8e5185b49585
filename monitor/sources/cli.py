"""Sub-commands of the sources package for the ``finmon`` CLI: ``bench sources``."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def register(bench: typer.Typer) -> None:
    """Add ``sources`` to the ``finmon bench`` group."""

    @bench.command("sources")
    def bench_sources(
        items: Annotated[int, typer.Option(min=10, help="Items in the benchmark feed.")] = 1000,
        repeats: Annotated[int, typer.Option(min=1, help="Polls per case.")] = 5,
        push_requests: Annotated[int, typer.Option(min=4, help="Single-item pushes.")] = 400,
        clients: Annotated[int, typer.Option(min=1, help="Concurrent push clients.")] = 4,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Feed poller (items/s, CPU per poll) and push endpoint (throughput, p50/p99, acks=all)."""
        from monitor.sources.bench import format_report, run_bench

        result = run_bench(
            items=items,
            repeats=repeats,
            push_requests=push_requests,
            clients=clients,
            echo=lambda line: typer.echo(line, err=True),
        )
        typer.echo(json.dumps(result) if as_json else format_report(result))
