from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pipelines.cli import register
from tests.pipelines.conftest import toy_frames


def make_app() -> typer.Typer:
    app = typer.Typer()
    bench = typer.Typer()
    app.add_typer(bench, name="bench")
    register(app, bench)
    return app


def test_train_then_evaluate_json(tiny_base: Path, tmp_path: Path) -> None:
    frames = toy_frames()
    frames["sentiment"].to_csv(tmp_path / "sent_train.csv", index=False)
    test = toy_frames(n=40, seed=5)["sentiment"].rename(columns={"text": "tweet", "label": "y"})
    test.to_json(tmp_path / "sent_test.jsonl", orient="records", lines=True)
    runner = CliRunner()
    out = tmp_path / "model"
    trained = runner.invoke(
        make_app(),
        [
            "train",
            "--out",
            str(out),
            "--sentiment-train",
            str(tmp_path / "sent_train.csv"),
            "--base-model",
            str(tiny_base),
            "--epochs",
            "1",
            "--lr",
            "0.003",
            "--batch-size",
            "16",
            "--num-threads",
            "1",
            "--no-progress",
        ],
    )
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(
        make_app(),
        [
            "evaluate",
            "--model",
            str(out),
            "--data",
            str(tmp_path / "sent_test.jsonl"),
            "--text-col",
            "tweet",
            "--label-col",
            "y",
            "--json",
            "--out-dir",
            str(tmp_path / "ev"),
        ],
    )
    assert result.exit_code == 0, result.output
    scores, _ = json.JSONDecoder().raw_decode(result.output[result.output.index('{"model"') :])
    assert scores["task"] == "sentiment" and scores["n"] == 40
    # The summary agrees with its own per-class table (macro: mean over the classes present).
    seen = [c for c in scores["per_class"].values() if c["support"]]
    assert sum(c["support"] for c in seen) == 40
    assert scores["macro_f1"] == pytest.approx(sum(c["f1"] for c in seen) / len(seen))
    right = sum(c["recall"] * c["support"] for c in seen)
    assert scores["accuracy"] == pytest.approx(right / 40)
    assert 0.0 <= scores["robustness"]["flip_rate"] <= 1.0
    assert (tmp_path / "ev" / "sent_test-sentiment-confusion.png").stat().st_size > 0
    table = runner.invoke(
        make_app(),
        [
            "evaluate",
            "--model",
            str(out),
            "--data",
            str(tmp_path / "sent_test.jsonl"),
            "--text-col",
            "tweet",
            "--label-col",
            "y",
            "--no-robustness",
            "--out-dir",
            str(tmp_path / "ev"),
        ],
    )
    assert "macro" in table.output and "neutral" in table.output


def test_malformed_file_exits_2_naming_file_row_column(tiny_base: Path, tmp_path: Path) -> None:
    bad = tmp_path / "sent_bad.csv"
    bad.write_text("text,label\nfine,bullish\nstrange,sideways\n", encoding="utf-8")
    result = CliRunner().invoke(
        make_app(),
        [
            "train",
            "--out",
            str(tmp_path / "m"),
            "--sentiment-train",
            str(bad),
            "--base-model",
            str(tiny_base),
            "--no-progress",
        ],
    )
    assert result.exit_code == 2
    assert f"{bad}, row 2, column 'label'" in result.output


def test_bench_train_json(tiny_base: Path, tmp_path: Path) -> None:
    frames = toy_frames()
    frames["sentiment"].to_csv(tmp_path / "sent.csv", index=False)
    frames["topic"].to_csv(tmp_path / "topic.csv", index=False)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"base_model: {tiny_base}\nsentiment_train: sent.csv\ntopic_train: topic.csv\n"
        "batch_size: 8\nmax_length_tokens: 24\nnum_threads: 1\n"
    )
    args = ["bench", "train", "--config", str(config), "--steps", "3", "--warmup-steps", "1"]
    result = CliRunner().invoke(make_app(), [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runs"][0]["precision"] == "fp32"
    assert all(run["ms_per_step"] > 0 for run in report["runs"])
    assert ("bf16_speedup" in report) == (len(report["runs"]) == 2)
