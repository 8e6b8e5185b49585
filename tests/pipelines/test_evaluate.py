from __future__ import annotations

import numpy as np
import pytest

from pipelines.errors import DataError
from pipelines.evaluate import infer_task, robustness


def test_robustness_counts_flips_and_drop() -> None:
    truth = np.array([0, 1, 2, 2])
    clean = np.eye(3)[[0, 1, 2, 0]]  # 3 of 4 right
    noisy = np.eye(3)[[0, 2, 2, 0]]  # 2 of 4 right, one prediction flipped
    out = robustness(truth, clean, noisy)
    assert out["noisy_accuracy"] == pytest.approx(0.5)
    assert out["accuracy_drop"] == pytest.approx(0.25)
    assert out["flip_rate"] == pytest.approx(0.25)


def test_task_inferred_from_heads_file_name_or_labels() -> None:
    assert infer_task(["topic"], "anything.csv", [1]) == "topic"
    both = ["topic", "sentiment"]
    assert infer_task(both, "sent_valid.csv", [0]) == "sentiment"
    assert infer_task(both, "topic_valid.csv", [0]) == "topic"
    assert infer_task(both, "news.jsonl", ["Bullish", "neutral"]) == "sentiment"
    with pytest.raises(DataError, match="--task"):
        infer_task(both, "news.jsonl", [3, 4])
