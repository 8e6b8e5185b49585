"""Sub-commands of this package for the ``finmon`` CLI: ``train``, ``evaluate``, ``bench train``
and ``demo`` (which needs a model from here and the running system from ``monitor.demo``).
Registered through the ``finmon.commands`` entry point (pyproject.toml), so the serving side
never imports this module."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import typer

from monitor.daemon_cli import ConfigOption, settings_or_exit, setup_logging
from monitor.errors import FinMonError

logger = logging.getLogger(__name__)

Opt = typer.Option
Task = Literal["sentiment", "topic"]


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``train``, ``evaluate`` and ``demo`` to ``app`` and ``train`` to the ``bench`` group."""
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
    app.command("demo")(demo_command)
    bench.command("train")(bench_train_command)


def demo_command(
    config: ConfigOption = None,
    duration_sec: Annotated[float, Opt(help="Stop after this many seconds.")] = 75.0,
    forever: Annotated[bool, Opt("--forever", help="Run until Ctrl-C.")] = False,
    retrain: Annotated[bool, Opt(help="Ignore the cached demo model.")] = False,
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


def train_command(
    *,
    out: Annotated[Path, Opt("--out", help="Directory for the exported model.")],
    config: Annotated[Path | None, Opt("--config", help="YAML training config.")] = None,
    resume: Annotated[bool, Opt("--resume", help="Continue from <out>/checkpoint.")] = False,
    sentiment_train: Annotated[str | None, Opt(help="Sentiment training file.")] = None,
    topic_train: Annotated[str | None, Opt(help="Topic training file.")] = None,
    sentiment_test: Annotated[str | None, Opt(help="Sentiment test file (report only).")] = None,
    topic_test: Annotated[str | None, Opt(help="Topic test file (report only).")] = None,
    base_model: Annotated[str | None, Opt(help="Local dir, hub id or package:NAME.")] = None,
    text_col: Annotated[str | None, Opt(help="Text column name.")] = None,
    label_col: Annotated[str | None, Opt(help="Label column name.")] = None,
    epochs: Annotated[float | None, Opt(help="Epochs (fractions allowed).")] = None,
    lr: Annotated[float | None, Opt(help="Peak encoder learning rate.")] = None,
    batch_size: Annotated[int | None, Opt(help="Training batch size.")] = None,
    max_length_tokens: Annotated[
        int | None, Opt(help="Truncate texts to this many tokens.")
    ] = None,
    max_minutes: Annotated[
        float | None, Opt(help="Wall-time budget; best state is exported.")
    ] = None,
    seed: Annotated[int | None, Opt(help="Random seed.")] = None,
    holdout_fraction: Annotated[float | None, Opt(help="Share of *_train held out.")] = None,
    teachers: Annotated[
        int | None, Opt(min=1, help="With --self-distill: how many teachers to train.")
    ] = None,
    self_distill: Annotated[
        bool | None,
        Opt("--self-distill/--no-self-distill", help="Train a teacher first, then distil."),
    ] = None,
    device: Annotated[str | None, Opt(help="auto, cpu or cuda.")] = None,
    num_threads: Annotated[int | None, Opt(help="CPU threads for torch.")] = None,
    precision: Annotated[str | None, Opt(help="auto (bf16 where native), fp32 or bf16.")] = None,
    progress: Annotated[bool, Opt("--progress/--no-progress")] = True,
) -> None:
    """Fine-tune the multi-task model and export it (weights, tokenizer, labels, model card)."""
    from pipelines.threads import set_training_wait_policy

    wait_policy = set_training_wait_policy()
    from pipelines.config import load_config
    from pipelines.train import train

    _logging()
    logging.getLogger(__name__).info("OpenMP wait policy: %s", wait_policy)
    overrides: dict[str, Any] = {
        "sentiment_train": sentiment_train,
        "topic_train": topic_train,
        "sentiment_test": sentiment_test,
        "topic_test": topic_test,
        "base_model": base_model,
        "text_col": text_col,
        "label_col": label_col,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "max_length_tokens": max_length_tokens,
        "max_minutes": max_minutes,
        "seed": seed,
        "holdout_fraction": holdout_fraction,
        "teachers": teachers,
        "self_distill": self_distill,
        "device": device,
        "num_threads": num_threads,
        "precision": precision,
    }
    with _errors():
        result = train(load_config(config, **overrides), out, progress=progress, resume=resume)
    typer.echo(
        json.dumps(
            {
                "model_dir": str(result.model_dir),
                "seconds": round(result.seconds, 1),
                "steps": result.steps,
                "stopped": result.stopped,
                "metrics": result.metrics,
            },
            indent=2,
        )
    )


def bench_train_command(
    *,
    config: Annotated[
        Path, Opt("--config", help="YAML training config (its data files are used).")
    ] = Path("configs/twitter-multitask.yaml"),
    steps: Annotated[int, Opt(min=1, help="Timed steps per precision.")] = 200,
    warmup_steps: Annotated[int, Opt(min=0, help="Untimed steps first.")] = 20,
    as_json: Annotated[bool, Opt("--json", help="Print one JSON object.")] = False,
) -> None:
    """Training step time: fp32 and bf16 autocast on the same batches, one run, as a ratio."""
    from pipelines.threads import set_training_wait_policy

    policy = set_training_wait_policy()
    from pipelines.bench import format_train_bench, run_train_bench
    from pipelines.config import load_config

    with _errors():
        cfg = load_config(config)
        result = {**run_train_bench(cfg, steps=steps, warmup_steps=warmup_steps), "omp": policy}
    typer.echo(json.dumps(result) if as_json else format_train_bench(result))


def evaluate_command(
    *,
    model: Annotated[Path, Opt("--model", help="Exported model directory.")],
    data: Annotated[Path, Opt("--data", help="Labelled CSV, JSONL or Parquet file.")],
    task: Annotated[
        str | None, Opt(help="sentiment, topic or entity (inferred when omitted; not entity).")
    ] = None,
    text_col: Annotated[str, Opt(help="Text column name.")] = "text",
    label_col: Annotated[str, Opt(help="Label column name.")] = "label",
    entities_col: Annotated[
        str, Opt(help="With --task entity: the JSON column {entity: sentiment}.")
    ] = "entities",
    as_json: Annotated[bool, Opt("--json", help="Print one JSON object.")] = False,
    out_dir: Annotated[Path | None, Opt(help="Where to write JSON and PNG [MODEL/eval].")] = None,
    robustness: Annotated[bool, Opt("--robustness/--no-robustness")] = True,
    batch_size: Annotated[int, Opt(help="Inference batch size.")] = 128,
) -> None:
    """Score a model on a labelled file; writes a metrics JSON and a confusion-matrix PNG."""
    _cpu_threads_yield()
    from pipelines.evaluate import EvalOptions, evaluate

    _logging()
    if task == "entity":
        _evaluate_entities(
            model,
            data,
            text_col=text_col,
            label_col=label_col,
            entities_col=entities_col,
            out_dir=out_dir,
            robustness=robustness,
        )
        return
    if task not in (None, "sentiment", "topic"):
        raise typer.BadParameter("must be sentiment, topic or entity", param_hint="--task")
    options = EvalOptions(
        task=cast(Task | None, task),
        text_col=text_col,
        label_col=label_col,
        out_dir=str(out_dir) if out_dir else None,
        robustness=robustness,
        batch_size=batch_size,
    )
    with _errors():
        result = evaluate(model, data, options)
    typer.echo(json.dumps(result) if as_json else format_report(result))


def _evaluate_entities(
    model: Path,
    data: Path,
    *,
    text_col: str,
    label_col: str,
    entities_col: str,
    out_dir: Path | None,
    robustness: bool,
) -> None:
    from pipelines.evaluate_entity import (
        EntityEvalOptions,
        evaluate_entities,
        format_entity_report,
    )

    options = EntityEvalOptions(
        text_col=text_col,
        label_col=label_col,
        entities_col=entities_col,
        out_dir=str(out_dir) if out_dir else None,
        robustness=robustness,
    )
    with _errors():
        typer.echo(format_entity_report(evaluate_entities(model, data, options)))


def format_report(result: dict[str, Any]) -> str:
    """Human-readable summary and per-class table."""
    lines = [
        f"{result['task']} on {result['data']} ({result['n']} rows)",
        f"accuracy {result['accuracy']:.4f}   ECE {result['ece']:.4f}",
        f"macro    P {result['macro_precision']:.4f}  R {result['macro_recall']:.4f}"
        f"  F1 {result['macro_f1']:.4f}",
        f"weighted P {result['weighted_precision']:.4f}  R {result['weighted_recall']:.4f}"
        f"  F1 {result['weighted_f1']:.4f}",
    ]
    if "robustness" in result:
        rob = result["robustness"]
        lines.append(
            f"typo/casing noise: accuracy {rob['noisy_accuracy']:.4f} "
            f"(drop {rob['accuracy_drop']:+.4f}), flip rate {rob['flip_rate']:.4f}"
        )
    width = max(len(n) for n in result["per_class"])
    lines.append(f"{'class':<{width}}  precision  recall     f1  support")
    for name, s in result["per_class"].items():
        lines.append(
            f"{name:<{width}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:5.4f}"
            f"  {s['support']:7d}"
        )
    lines.append(f"wrote {result['files']['json']} and {result['files']['confusion_png']}")
    return "\n".join(lines)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn FinMon errors into a one-line message and exit status 2."""
    try:
        yield
    except FinMonError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _cpu_threads_yield() -> None:
    """Make idle OpenMP threads sleep instead of spin (``finmon evaluate``: short, often run next
    to other jobs). Only takes effect before torch is imported; see pipelines/threads.py."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
