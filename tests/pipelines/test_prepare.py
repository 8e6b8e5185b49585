from __future__ import annotations

from pipelines.config import TrainConfig
from pipelines.prepare import load_tasks
from tests.pipelines.conftest import toy_frames


def _holdout_texts(config: TrainConfig) -> dict[str, list[str]]:
    tasks = load_tasks(config, toy_frames())
    return {task: sorted(data.holdout["text"]) for task, data in tasks.items()}


def test_split_seed_fixes_the_holdout_whatever_the_training_seed() -> None:
    base = TrainConfig(seed=13, holdout_fraction=0.2)
    other_seed = TrainConfig(seed=14, holdout_fraction=0.2)
    same_split = TrainConfig(seed=14, split_seed=13, holdout_fraction=0.2)
    assert _holdout_texts(same_split) == _holdout_texts(base)
    assert _holdout_texts(other_seed) != _holdout_texts(base)  # the seed moves it otherwise
