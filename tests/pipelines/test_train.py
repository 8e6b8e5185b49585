from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from monitor.classify.model import build_model, load_model, read_card, save_model
from pipelines.batching import IGNORE
from pipelines.calibrate import fit_temperature
from pipelines.errors import CheckpointError
from pipelines.evaluate import EvalOptions, evaluate
from pipelines.loop import masked_loss
from pipelines.precision import use_bf16
from pipelines.predict import predict_probs
from pipelines.prepare import load_tasks
from pipelines.train import TrainConfig, train
from tests.pipelines.conftest import toy_frames


def tiny_config(base: Path, **changes: object) -> TrainConfig:
    options: dict[str, object] = {
        "base_model": str(base),
        "epochs": 8,
        "lr": 3e-3,
        "head_lr_multiplier": 1.0,
        "batch_size": 16,
        "max_length_tokens": 24,
        "holdout_fraction": 0.2,
        "evals_per_epoch": 1,
        "patience_evals": 20,
        "num_threads": 1,
        "dropout": 0.0,
    }
    return TrainConfig(**{**options, **changes})  # type: ignore[arg-type]


def fake_clock(step_sec: float) -> Callable[[], float]:
    ticks = itertools.count()
    return lambda: next(ticks) * step_sec


def test_masked_loss_ignores_missing_task_labels() -> None:
    logits = {
        "topic": torch.tensor([[2.0, 0.0], [0.0, 1.0]]),
        "sentiment": torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
    }
    labels = {"topic": torch.tensor([0, IGNORE]), "sentiment": torch.tensor([IGNORE, 2])}
    expected = (
        torch.nn.functional.cross_entropy(logits["topic"][:1], torch.tensor([0]))
        + torch.nn.functional.cross_entropy(logits["sentiment"][1:], torch.tensor([2]))
    ) / 2
    assert masked_loss(logits, labels).item() == pytest.approx(expected.item())


def test_tiny_model_learns(tiny_base: Path, tmp_path: Path) -> None:
    result = train(tiny_config(tiny_base), tmp_path / "m", frames=toy_frames(), progress=False)
    history = result.card["run"]["history"]
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    assert result.metrics["holdout"]["sentiment"]["accuracy"] > 0.6  # chance is 1/3
    assert result.metrics["holdout"]["topic"]["accuracy"] > 0.5  # 4 topics used: chance 1/4
    assert (result.model_dir / "model_card.json").is_file()


def test_same_seed_same_run(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, epochs=2)
    first = train(config, tmp_path / "a", frames=toy_frames(), progress=False)
    second = train(config, tmp_path / "b", frames=toy_frames(), progress=False)
    assert first.card["run"]["history"] == second.card["run"]["history"] or all(
        a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        for a, b in zip(first.card["run"]["history"], second.card["run"]["history"], strict=True)
    )


def test_one_head_when_only_one_task(tiny_base: Path, tmp_path: Path) -> None:
    frames = {"sentiment": toy_frames()["sentiment"]}
    result = train(tiny_config(tiny_base, epochs=1), tmp_path / "s", frames=frames, progress=False)
    model, _ = load_model(result.model_dir)
    assert list(model.meta.labels) == ["sentiment"]


def test_export_load_predict_round_trip(tiny_base: Path, tmp_path: Path) -> None:
    model, tokenizer = build_model(tiny_base, {"sentiment": ("negative", "neutral", "positive")})
    model.eval()
    texts = ["Acme soars", "Fed holds rates at &amp; https://t.co/x", "$TSLA plunges 5%"]
    before = predict_probs(model, tokenizer, texts, "sentiment")
    save_model(model, tokenizer, tmp_path / "rt", version="t1")
    loaded, loaded_tok = load_model(tmp_path / "rt")
    after = predict_probs(loaded, loaded_tok, texts, "sentiment")
    assert torch.equal(torch.from_numpy(before), torch.from_numpy(after))


def test_card_test_metrics_match_evaluate_on_exported_model(
    tiny_base: Path, tmp_path: Path
) -> None:
    frames = toy_frames(seed=1)
    for task, frame in frames.items():
        frame.to_csv(tmp_path / f"{task}_train.csv", index=False)
        toy_frames(n=60, seed=7)[task].to_csv(tmp_path / f"{task}_test.csv", index=False)
    config = tiny_config(
        tiny_base,
        epochs=2,
        data_root=str(tmp_path),
        sentiment_train="sentiment_train.csv",
        topic_train="topic_train.csv",
        sentiment_test="sentiment_test.csv",
        topic_test="topic_test.csv",
    )
    result = train(config, tmp_path / "m", progress=False)
    card = read_card(result.model_dir)
    assert card["data"]["sentiment"]["sha256"] and card["training_config"]["epochs"] == 2
    for task in ("sentiment", "topic"):
        scored = evaluate(
            result.model_dir,
            tmp_path / f"{task}_test.csv",
            EvalOptions(out_dir=str(tmp_path / "eval"), robustness=False),
        )
        assert scored["task"] == task
        assert scored["accuracy"] == pytest.approx(card["metrics"]["test"][task]["accuracy"])
        assert scored["macro_f1"] == pytest.approx(card["metrics"]["test"][task]["macro_f1"])
        assert Path(scored["files"]["confusion_png"]).stat().st_size > 0


def test_temperatures_are_fitted_on_the_exported_state(tiny_base: Path, tmp_path: Path) -> None:
    """The fit reads the holdout probabilities kept from the best evaluation: they must be the
    exported weights' own (a stale or later state's probabilities would give other values)."""
    frames = toy_frames(seed=3)
    config = tiny_config(tiny_base, epochs=4, evals_per_epoch=2)
    result = train(config, tmp_path / "m", frames=frames, progress=False)
    model, tokenizer = load_model(result.model_dir)
    model.meta = replace(model.meta, temperatures={})
    bf16 = use_bf16(config.precision, torch.device("cpu"))
    for task, data in load_tasks(config, frames).items():
        probs = predict_probs(
            model,
            tokenizer,
            data.holdout["text"].tolist(),
            task,
            batch_size=config.eval_batch_size,
            clean=False,
            bf16=bf16,
        )
        expected = fit_temperature(probs, data.holdout["label"].to_numpy())
        assert result.card["metrics"]["temperatures"][task] == pytest.approx(expected, rel=1e-3)


def test_time_budget_stops_early_and_exports(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, epochs=50, max_minutes=1.0, budget_probe_steps=5)
    result = train(
        config, tmp_path / "m", frames=toy_frames(), progress=False, clock=fake_clock(0.2)
    )
    assert "time budget" in result.stopped
    assert result.steps < 50 * 24
    assert result.card["run"]["history"][-1]["elapsed_sec"] <= 60.0
    assert load_model(result.model_dir)[0].meta.labels["sentiment"][0] == "negative"


def test_resume_continues_from_checkpoint(tiny_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    config = tiny_config(
        tiny_base, epochs=3, keep_checkpoint=True, max_minutes=0.5, budget_probe_steps=5
    )
    first = train(config, out, frames=toy_frames(), progress=False, clock=fake_clock(0.2))
    assert (out / "checkpoint" / "checkpoint.pt").is_file()
    resumed = train(
        tiny_config(tiny_base, epochs=3), out, frames=toy_frames(), progress=False, resume=True
    )
    history = resumed.card["run"]["history"]
    assert resumed.steps > first.steps
    assert history[: len(first.card["run"]["history"])] == first.card["run"]["history"]
    assert not (out / "checkpoint").exists()
    again = train(
        tiny_config(tiny_base, epochs=3), out, frames=toy_frames(), progress=False, resume=True
    )
    assert again.reused and again.card["run"]["history"] == history  # finished: reused as is
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(config, tmp_path / "empty", frames=toy_frames(), progress=False, resume=True)


def test_resume_rejects_a_changed_config(tiny_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    train(
        tiny_config(tiny_base, epochs=1, keep_checkpoint=True),
        out,
        frames=toy_frames(),
        progress=False,
    )
    with pytest.raises(CheckpointError, match="lr"):
        train(
            tiny_config(tiny_base, epochs=1, lr=1e-4),
            out,
            frames=toy_frames(),
            progress=False,
            resume=True,
        )


def test_frames_with_unknown_label_name_the_frame(tiny_base: Path, tmp_path: Path) -> None:
    bad = pd.DataFrame({"text": ["a", "b"], "label": ["bullish", "sideways"]})
    with pytest.raises(Exception, match=r"<frames\[sentiment\]>, row 2, column 'label'"):
        train(tiny_config(tiny_base), tmp_path / "x", frames={"sentiment": bad}, progress=False)


def test_label_smoothing_raises_the_loss_of_confident_right_answers() -> None:
    logits = {"sentiment": torch.tensor([[8.0, 0.0, 0.0]])}
    labels = {"sentiment": torch.tensor([0])}
    plain = masked_loss(logits, labels)
    smoothed = masked_loss(logits, labels, label_smoothing=0.1)
    assert smoothed.item() > plain.item()
