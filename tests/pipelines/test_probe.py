from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch

from monitor.classify.model import build_model
from pipelines.batching import IGNORE, encode
from pipelines.labels import SENTIMENT_LABELS, TWITTER_TOPICS
from pipelines.predict import predict_encoded_outputs
from pipelines.probe import ABSENT_CLASS_BIAS, init_heads_from_probe, probe_weights
from pipelines.train import train
from tests.pipelines.conftest import toy_frames
from tests.pipelines.test_train import tiny_config


def clusters(labels: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, size=(max(labels) + 1, 8))
    y = np.repeat(np.asarray(labels), 40)
    return (centres[y] + rng.normal(0.0, 1.0, size=(len(y), 8))).astype(np.float32), y


def test_probe_separates_clusters_and_silences_absent_classes() -> None:
    x, y = clusters([0, 1, 3])
    weight, bias = probe_weights(x, y, n_classes=4, seed=0)
    assert weight.shape == (4, 8) and bias.shape == (4,)
    assert ((x @ weight.T + bias).argmax(axis=1) == y).mean() > 0.95
    assert not weight[2].any() and bias[2] == ABSENT_CLASS_BIAS


def test_two_class_probe_is_an_antisymmetric_pair() -> None:
    x, y = clusters([1, 2])
    weight, bias = probe_weights(x, y, n_classes=3, seed=0)
    np.testing.assert_allclose(weight[1], -weight[2])
    assert bias[1] == pytest.approx(-bias[2])
    assert ((x @ weight.T + bias).argmax(axis=1) == y).mean() > 0.95


def test_heads_become_the_probe_of_their_own_task(tiny_base: Path) -> None:
    frames = toy_frames()
    model, tokenizer = build_model(
        str(tiny_base), {"sentiment": SENTIMENT_LABELS, "topic": TWITTER_TOPICS}
    )
    model.train()
    sentiment = (
        frames["sentiment"]["label"].map({"Bearish": 0, "bullish": 1, "neutral": 2}).to_numpy()
    )
    topic = np.array(
        [TWITTER_TOPICS.index(v) if isinstance(v, str) else v for v in frames["topic"]["label"]]
    )
    data = encode(
        tokenizer,
        {
            "sentiment": (frames["sentiment"]["text"].tolist(), sentiment),
            "topic": (frames["topic"]["text"].tolist(), topic),
        },
        ["sentiment", "topic"],
        24,
    )
    topic_head = cast(torch.nn.Linear, model.heads["topic"])
    before = topic_head.weight.detach().clone()
    accuracy = init_heads_from_probe(
        model, data, pad_id=0, device=torch.device("cpu"), bf16=False, seed=0
    )
    assert model.training  # the caller's mode is kept
    assert not torch.equal(before, topic_head.weight)
    features = torch.from_numpy(
        cast(
            np.ndarray,
            predict_encoded_outputs(
                model, data, [], batch_size=64, pad_id=0, device=torch.device("cpu"), features=True
            ).pooled,
        )
    )
    for task, chance in (("sentiment", 1 / 3), ("topic", 1 / 4)):
        rows = data.labels[task] != IGNORE
        with torch.no_grad():
            predicted = (
                cast(torch.nn.Linear, model.heads[task])(features[rows]).argmax(dim=1).numpy()
            )
        assert accuracy[task] == pytest.approx((predicted == data.labels[task][rows]).mean())
        assert accuracy[task] > chance + 0.2


def test_teacher_probe_init_applies_to_the_teacher_alone(tiny_base: Path, tmp_path: Path) -> None:
    """``teacher_probe_init`` starts the self-distillation teacher from its probe while the
    student starts at random; with a learning rate too small to move anything, only a probe's
    head can score."""
    scores = {}
    for probe in (False, True):
        config = tiny_config(
            tiny_base,
            epochs=1,
            self_distill=True,
            teacher_epochs=1,
            teacher_lr=1e-12,
            teacher_probe_init=probe,
            keep_checkpoint=True,
        )
        result = train(config, tmp_path / str(probe), frames=toy_frames(), progress=False)
        teacher_dir = tmp_path / str(probe) / "teacher"
        teacher_card = json.loads((teacher_dir / "model_card.json").read_text())
        assert teacher_card["stage"]["probe_init"] is probe
        assert result.card["stage"]["probe_init"] is False
        scores[probe] = result.card["teacher"]["metrics"]["holdout"]["sentiment"]["accuracy"]
    assert scores[True] > scores[False] + 0.1
