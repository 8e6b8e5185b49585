"""From a config (files) or in-memory frames to cleaned, deduplicated, split task data."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.config import TrainConfig
from pipelines.data import (
    KEY,
    SENTIMENT_SPEC,
    LabelSpec,
    dedup,
    file_sha256,
    grouped_split,
    leakage,
    load_table,
    prepare,
    topic_spec,
)
from pipelines.errors import DataError, TrainConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskData:
    """One task's cleaned splits and what happened on the way (for the model card)."""

    task: str
    spec: LabelSpec
    train: pd.DataFrame
    holdout: pd.DataFrame
    test: pd.DataFrame | None
    stats: Mapping[str, Any] = field(default_factory=dict)


def spec_for(task: str, config: TrainConfig) -> LabelSpec:
    return SENTIMENT_SPEC if task == "sentiment" else topic_spec(config.topic_labels)


def load_tasks(
    config: TrainConfig, frames: Mapping[str, pd.DataFrame] | None = None
) -> dict[str, TaskData]:
    """Every task with training data, from ``frames`` when given, else from the config's files.

    Raises TrainConfigError when there is no training data at all, DataError for bad files.
    """
    sources = _sources(config, frames)
    if not sources:
        raise TrainConfigError(
            "sentiment_train", "no training data: set sentiment_train and/or topic_train"
        )
    return {task: _one_task(task, raw, name, config) for task, (raw, name) in sources.items()}


def _sources(
    config: TrainConfig, frames: Mapping[str, pd.DataFrame] | None
) -> dict[str, tuple[pd.DataFrame, str]]:
    if frames is not None:
        unknown = sorted(set(frames) - {"sentiment", "topic"})
        if unknown:
            raise TrainConfigError("frames", f"unknown task {unknown[0]!r}")
        return {
            task: (_frame_columns(df, f"<frames[{task}]>", config), f"<frames[{task}]>")
            for task, df in frames.items()
            if len(df)
        }
    files = {"sentiment": config.sentiment_train, "topic": config.topic_train}
    return {
        task: (load_table(config.path(f), config.text_col, config.label_col), str(config.path(f)))
        for task, f in files.items()
        if f
    }


def _frame_columns(frame: pd.DataFrame, name: str, config: TrainConfig) -> pd.DataFrame:
    for column in (config.text_col, config.label_col):
        if column not in frame.columns:
            raise DataError(name, f"no such column (columns: {list(frame.columns)})", column=column)
    return frame[[config.text_col, config.label_col]].rename(
        columns={config.text_col: "text", config.label_col: "label"}
    )


def _one_task(task: str, raw: pd.DataFrame, name: str, config: TrainConfig) -> TaskData:
    spec = spec_for(task, config)
    clean = prepare(raw, spec, name)
    stats: dict[str, Any] = {"file": name, "rows": len(raw), "rows_clean": len(clean)}
    if not name.startswith("<"):
        stats["sha256"] = file_sha256(name)
    if config.dedup != "none":
        before = len(clean)
        clean, dup = dedup(clean) if config.dedup == "normalised" else _exact(clean)
        stats["dedup"] = {"removed": before - len(clean), **dup}
    test = _test_frame(task, config, spec, stats)
    if test is not None:
        clean = _leakage(clean, test, config, stats)
    train, holdout = grouped_split(clean, config.holdout_fraction, config.seed)
    stats.update(train=len(train), holdout=len(holdout))
    logger.info("task %s: %d train, %d holdout rows (%s)", task, len(train), len(holdout), name)
    return TaskData(task, spec, train, holdout, test, stats)


def _exact(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    out = frame.drop_duplicates(subset=["text"]).reset_index(drop=True)
    return out, {"exact": len(frame) - len(out)}


def _test_frame(
    task: str, config: TrainConfig, spec: LabelSpec, stats: dict[str, Any]
) -> pd.DataFrame | None:
    file = config.sentiment_test if task == "sentiment" else config.topic_test
    if not file:
        return None
    path = config.path(file)
    frame = prepare(load_table(path, config.text_col, config.label_col), spec, str(path))
    stats["test"] = {"file": str(path), "sha256": file_sha256(path), "rows": len(frame)}
    return frame


def _leakage(
    train: pd.DataFrame, test: pd.DataFrame, config: TrainConfig, stats: dict[str, Any]
) -> pd.DataFrame:
    shared = leakage(train, test)
    stats["leakage"] = {"shared_keys": shared, "policy": config.leakage}
    if shared and config.leakage == "error":
        raise DataError(
            stats["test"]["file"], f"{shared} normalised texts also occur in the training file"
        )
    if shared:
        logger.warning("%d normalised test texts also occur in training data", shared)
    if config.leakage == "drop":
        keep = ~train[KEY].isin(set(test[KEY]))
        stats["leakage"]["dropped_train_rows"] = int((~keep).sum())
        return train[keep].reset_index(drop=True)
    return train
