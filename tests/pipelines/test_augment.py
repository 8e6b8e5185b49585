from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from monitor.classify.base import resolve_base_model
from pipelines.augment import EpochAugmenter, tokenizer_fn
from pipelines.batching import encode
from pipelines.train import train
from tests.pipelines.conftest import toy_frames
from tests.pipelines.test_train import tiny_config

TEXTS = [f"Acme{i} shares plunge after quarterly earnings disappoint investors" for i in range(200)]


@pytest.fixture(scope="module")
def augmenter_parts() -> tuple[object, object]:
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model())
    labels = np.arange(len(TEXTS)) % 3
    return tokenizer, encode(tokenizer, {"sentiment": (TEXTS, labels)}, ["sentiment"], 32)


def make(parts: tuple[object, object], rate: float, seed: int = 1) -> EpochAugmenter:
    tokenizer, base = parts
    return EpochAugmenter(base, TEXTS, tokenizer_fn(tokenizer, 32), rate=rate, seed=seed)  # type: ignore[arg-type]


def changed(a: EpochAugmenter, epoch: int) -> int:
    ids = a.epoch(epoch).input_ids
    return sum(x != y for x, y in zip(ids, a.base.input_ids, strict=True))


def test_rate_zero_trains_on_the_clean_examples(augmenter_parts: tuple[object, object]) -> None:
    aug = make(augmenter_parts, 0.0)
    assert aug.epoch(3) is aug.base


def test_a_share_of_texts_is_noised_and_labels_are_kept(
    augmenter_parts: tuple[object, object],
) -> None:
    aug = make(augmenter_parts, 0.5)
    noised = aug.epoch(0)
    # Half of 200 texts are drawn; about half of those get a typo (casing alone changes nothing).
    assert 25 <= changed(aug, 0) <= 100
    assert noised.labels is aug.base.labels
    assert len(noised) == len(aug.base)


def test_same_seed_and_epoch_same_noise_other_epoch_other_noise(
    augmenter_parts: tuple[object, object],
) -> None:
    first, second = make(augmenter_parts, 0.5), make(augmenter_parts, 0.5)
    assert first.epoch(2).input_ids == second.epoch(2).input_ids
    assert first.epoch(2).input_ids != first.epoch(3).input_ids


def test_texts_must_match_the_examples(augmenter_parts: tuple[object, object]) -> None:
    tokenizer, base = augmenter_parts
    with pytest.raises(ValueError, match="texts for"):
        EpochAugmenter(base, TEXTS[:5], tokenizer_fn(tokenizer, 32), rate=0.5, seed=1)  # type: ignore[arg-type]


def test_training_with_augmentation_still_learns(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, augment_rate=0.5)
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    assert result.metrics["holdout"]["sentiment"]["accuracy"] > 0.6  # chance is 1/3
    assert result.card["training_config"]["augment_rate"] == 0.5
