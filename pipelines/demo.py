"""The demo's model (``finmon demo``): the configured one, or a small one fine-tuned once on
synthetic headlines.

The fine-tuned model is cached under the user cache directory (``platformdirs``), keyed by the
corpus revision, so later demos start at once.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from platformdirs import user_cache_dir

from monitor.classify.model import META_FILE
from monitor.demo.generator import NewsGenerator
from monitor.settings import Settings
from pipelines.config import TrainConfig
from pipelines.train import train

# Bump when the generator or the recipe changes, so stale cached models are not reused.
DEMO_MODEL_REVISION = "3"
DEMO_PER_CLASS = 40
DEMO_MAX_MINUTES = 3.0


def demo_model_dir() -> Path:
    return Path(user_cache_dir("finmon")) / f"demo-model-r{DEMO_MODEL_REVISION}"


def demo_frames(per_class: int = DEMO_PER_CLASS, seed: int = 11) -> dict[str, pd.DataFrame]:
    """Training frames from the synthetic generator: one per task, text and label names."""
    corpus = NewsGenerator(seed=seed, prefix="train").corpus(per_class)
    # Like the real data, each text carries one task's label; split the corpus between tasks.
    ordered = sorted(corpus, key=lambda item: item.id)
    sentiment = [(it.headline, it.sentiment) for i, it in enumerate(ordered) if i % 2 == 0]
    topic = [(it.headline, it.topic) for i, it in enumerate(ordered) if i % 2 == 1]
    return {
        "sentiment": pd.DataFrame(sentiment, columns=["text", "label"]),
        "topic": pd.DataFrame(topic, columns=["text", "label"]),
    }


def ensure_demo_model(
    settings: Settings, *, retrain: bool = False, echo: Callable[[str], None] = print
) -> Path:
    """``model.path`` when set; else the cached demo model, trained first if missing."""
    if settings.model.path:
        return Path(settings.model.path)
    target = demo_model_dir()
    if (target / META_FILE).is_file() and not retrain:
        return target
    echo(
        f"no model configured: fine-tuning a demo model on synthetic headlines "
        f"(at most {DEMO_MAX_MINUTES:.0f} min, cached in {target})"
    )
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    # Synthetic headlines are short and easy: a high learning rate and small batches give the
    # most useful steps within the time budget.
    config = TrainConfig(
        epochs=4.0,
        max_minutes=DEMO_MAX_MINUTES,
        version="demo-synthetic",
        lr=3e-4,
        batch_size=16,
        max_length_tokens=24,
        holdout_fraction=0.1,
    )
    result = train(config, staging, frames=demo_frames(), progress=True)
    shutil.rmtree(target, ignore_errors=True)
    Path(result.model_dir).rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    return target
