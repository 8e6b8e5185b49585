from __future__ import annotations

import random
import string
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import TrainConfig
from pipelines.errors import TrainConfigError
from pipelines.linear_teacher import _pipeline, fit_predict, linear_targets, mix_targets
from pipelines.prepare import load_tasks
from pipelines.train import train
from tests.pipelines.conftest import toy_frames
from tests.pipelines.test_train import tiny_config


def _noise_texts(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Random words with random labels: nothing to generalise, everything to memorise."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=8)) for _ in range(n * 3)]
    texts = [" ".join([*words[3 * i : 3 * i + 3], words[3 * i]]) for i in range(n)]
    return texts, np.array([rng.randrange(3) for _ in range(n)])


def test_own_texts_get_out_of_fold_probabilities() -> None:
    texts, labels = _noise_texts(150)
    own, _ = fit_predict(texts, labels, [], 3, seed=0)
    in_sample = _pipeline(0).fit(texts, labels).predict_proba(texts)
    rows = np.arange(len(labels))
    # Fitted on them, the model echoes the gold labels; out of fold it cannot.
    assert in_sample[rows, labels].mean() > 0.7
    assert own[rows, labels].mean() < 0.45
    np.testing.assert_allclose(own.sum(axis=1), 1.0, rtol=1e-5)


def test_linear_targets_follow_the_training_layout() -> None:
    config = TrainConfig(holdout_fraction=0.2)
    tasks = load_tasks(config, toy_frames())
    out = linear_targets(tasks, {"sentiment": 0.3}, seed=0)
    n_sentiment, n_topic = len(tasks["sentiment"].train), len(tasks["topic"].train)
    assert set(out) == {"sentiment"}
    assert out["sentiment"].shape == (n_sentiment + n_topic, 3)
    np.testing.assert_allclose(out["sentiment"].sum(axis=1), 1.0, rtol=1e-5)
    # Sentiment rows come first (as encode lays them out) and are learnable from the verbs.
    gold = tasks["sentiment"].train["label"].to_numpy()
    assert (out["sentiment"][:n_sentiment].argmax(axis=1) == gold).mean() > 0.8


def test_mix_weights_the_linear_teacher_per_task() -> None:
    teachers = {"sentiment": np.array([[1.0, 0.0, 0.0]]), "topic": np.array([[0.5, 0.5]])}
    linear = {"sentiment": np.array([[0.0, 0.0, 1.0]])}
    mixed = mix_targets(teachers, linear, {"sentiment": 0.25})
    np.testing.assert_allclose(mixed["sentiment"], [[0.75, 0.0, 0.25]])
    np.testing.assert_allclose(mixed["topic"], teachers["topic"])
    alone = mix_targets(None, linear, {"sentiment": 0.25})
    np.testing.assert_allclose(alone["sentiment"], linear["sentiment"])


def test_train_with_a_linear_teacher(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, epochs=3, linear_teacher={"sentiment": 0.5})
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    assert result.card["training_config"]["linear_teacher"] == {"sentiment": 0.5}
    assert result.metrics["holdout"]["sentiment"]["accuracy"] > 0.6  # chance is 1/3


def test_a_linear_teacher_needs_its_task_data(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, linear_teacher={"topic": 0.3})
    with pytest.raises(TrainConfigError, match="linear_teacher"):
        train(config, tmp_path / "m", frames={"sentiment": toy_frames()["sentiment"]})


@pytest.mark.parametrize("value", [{"volume": 0.3}, {"sentiment": 0.0}, {"sentiment": "a"}, 0.3])
def test_bad_linear_teacher_names_the_field(tiny_base: Path, value: object) -> None:
    with pytest.raises(TrainConfigError, match="linear_teacher"):
        tiny_config(tiny_base, linear_teacher=value)
