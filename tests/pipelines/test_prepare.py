from __future__ import annotations

from pipelines.config import TrainConfig
from pipelines.prepare import load_tasks
from tests.pipelines.conftest import toy_frames


def _holdout_texts(config: TrainConfig) -> dict[str, list[str]]:
    tasks = load_tasks(config, toy_frames())
    return {task: sorted(data.holdout["text"]) for task, data in tasks.items()}


def test_the_seed_fixes_the_holdout() -> None:
    base = TrainConfig(seed=13, holdout_fraction=0.2)
    assert _holdout_texts(TrainConfig(seed=13, holdout_fraction=0.2, lr=1e-3)) == _holdout_texts(
        base
    )
    assert _holdout_texts(TrainConfig(seed=14, holdout_fraction=0.2)) != _holdout_texts(base)
