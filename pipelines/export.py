"""Write the served model directory and its ``model_card.json``; score test sets for the card."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from monitor.classify.model import CARD_FILE, MultiTaskModel, save_model
from pipelines.config import TrainConfig
from pipelines.plan import FitStage
from pipelines.predict import predict_probs
from pipelines.prepare import TaskData
from pipelines.scoring import confusion, expected_calibration_error, report


def finmon_version() -> str:
    try:
        return package_version("finmon")
    except PackageNotFoundError:
        return "0+unknown"


def version_string(config: TrainConfig) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return config.version or f"{finmon_version()}+{stamp}"


def test_metrics(
    model: MultiTaskModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Mapping[str, TaskData],
    config: TrainConfig,
    device: torch.device,
) -> dict[str, Any]:
    """Scores on the configured test files (report only; nothing is selected on them), in fp32
    as ``finmon evaluate`` scores them."""
    out: dict[str, Any] = {}
    for task, data in tasks.items():
        if data.test is None:
            continue
        probs = predict_probs(
            model,
            tokenizer,
            data.test["text"].tolist(),
            task,
            batch_size=config.eval_batch_size,
            device=device,
            clean=False,
        )
        truth = data.test["label"].to_numpy()
        rep = report(confusion(truth, probs.argmax(axis=1), len(data.spec.names)), data.spec.names)
        out[task] = {**rep.to_json(), "ece": expected_calibration_error(probs, truth)}
    return out


def export_model(
    model: MultiTaskModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    tasks: Mapping[str, TaskData],
    config: TrainConfig,
    stage: FitStage,
    metrics: Mapping[str, Any],
    run: Mapping[str, Any],
) -> dict[str, Any]:
    """Save weights, tokenizer and label maps (monitor's format) plus the card into
    ``stage.out_dir``; return the card."""
    out_dir = stage.out_dir
    version = version_string(config)
    model.to("cpu")
    save_model(model, tokenizer, out_dir, version=version)
    card = {
        "version": version,
        "base_model": stage.base_model,
        "stage": stage.to_json(),
        "tasks": {t: list(d.spec.names) for t, d in tasks.items()},
        "data": {t: dict(d.stats) for t, d in tasks.items()},
        "training_config": config.to_json(),
        "metrics": dict(metrics),
        "run": dict(run),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "software": {
            "finmon": finmon_version(),
            "torch": torch.__version__,
            "transformers": package_version("transformers"),
            "python": platform.python_version(),
        },
    }
    path = Path(out_dir) / CARD_FILE
    path.write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    return card


def update_card(out_dir: str | Path, **sections: Any) -> dict[str, Any]:
    """Add or replace top-level sections of an exported model's card; return the new card."""
    path = Path(out_dir) / CARD_FILE
    card = {**json.loads(path.read_text("utf-8")), **sections}
    path.write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    return card
