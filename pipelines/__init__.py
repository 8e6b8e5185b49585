"""Offline training and evaluation of the model the monitor serves.

Public surface (imported lazily, so ``import pipelines`` does not load torch):

- :func:`pipelines.train.train`, :class:`pipelines.config.TrainConfig`,
  :class:`pipelines.train.TrainResult`, :func:`pipelines.config.load_config`;
- :func:`pipelines.evaluate.evaluate`, :class:`pipelines.evaluate.EvalOptions`;
- :data:`pipelines.labels.TWITTER_TOPICS`, :data:`pipelines.labels.SENTIMENT_SYNONYMS`;
- errors: :class:`pipelines.errors.DataError`, ``TrainConfigError``, ``CheckpointError``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train": "pipelines.train",
    "TrainResult": "pipelines.train",
    "TrainConfig": "pipelines.config",
    "load_config": "pipelines.config",
    "evaluate": "pipelines.evaluate",
    "EvalOptions": "pipelines.evaluate",
    "TWITTER_TOPICS": "pipelines.labels",
    "SENTIMENT_SYNONYMS": "pipelines.labels",
    "DataError": "pipelines.errors",
    "TrainConfigError": "pipelines.errors",
    "CheckpointError": "pipelines.errors",
}

__all__ = [
    "SENTIMENT_SYNONYMS",
    "TWITTER_TOPICS",
    "CheckpointError",
    "DataError",
    "EvalOptions",
    "TrainConfig",
    "TrainConfigError",
    "TrainResult",
    "evaluate",
    "load_config",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
