from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import TrainConfig, load_config
from pipelines.errors import TrainConfigError

REPO = Path(__file__).resolve().parents[2]


def test_yaml_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("sentiment_train: data/s.csv\nepochs: 2\n", "utf-8")
    config = load_config(tmp_path / "c.yaml", lr=1e-3)
    assert config.epochs == 2 and config.lr == 1e-3
    assert config.path(config.sentiment_train or "") == tmp_path / "data" / "s.csv"


def test_unknown_key_and_bad_value_are_named(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("epoch: 2\n", "utf-8")
    with pytest.raises(TrainConfigError, match="'epoch'"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(TrainConfigError, match="'holdout_fraction'"):
        TrainConfig(holdout_fraction=0.7)


@pytest.mark.parametrize("file", ["twitter-multitask.yaml", "twitter-multitask-mpnet.yaml"])
def test_shipped_benchmark_configs(file: str, shared_data: Path) -> None:
    config = load_config(REPO / "configs" / file)
    if config.teacher_base_model is not None:  # where scripts/fetch_teacher_model.py puts it
        where = config.path(config.teacher_base_model).resolve()
        assert where == (REPO.parent / "models" / "all-mpnet-base-v2").resolve()
    for name in (
        config.sentiment_train,
        config.topic_train,
        config.sentiment_test,
        config.topic_test,
    ):
        assert name and config.path(name).is_file()
