from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest

from pipelines.batching import IGNORE, Encoded
from pipelines.config import load_config
from pipelines.errors import TrainConfigError
from pipelines.train import train
from pipelines.transfer import TransferPolicy, concat, perturb, transfer_texts, unlabelled
from tests.pipelines.conftest import toy_frames
from tests.pipelines.test_train import tiny_config

TEXTS = [
    "Acme beats estimates and raises its outlook for the year",
    "Fed holds rates steady as inflation cools",
    "$TSLA plunges after deliveries miss",
    "Gold",
]


def test_copies_come_copy_by_copy_and_repeat_with_the_seed() -> None:
    copies = transfer_texts(TEXTS, 3, seed=13)
    assert len(copies) == 3 * len(TEXTS)
    assert copies == transfer_texts(TEXTS, 3, seed=13)
    assert copies != transfer_texts(TEXTS, 3, seed=14)
    assert transfer_texts(TEXTS, 0, seed=13) == []
    assert all(copy for copy in copies)  # never empty, even for a one-word text
    # The k-th copy of text i sits at k * len(texts) + i: its words mostly come from text i.
    for k in range(3):
        for i, text in enumerate(TEXTS):
            words = copies[k * len(TEXTS) + i].split()
            assert sum(w in text.split() for w in words) >= len(words) // 2


def test_words_are_kept_dropped_replaced_from_the_corpus_or_misspelt() -> None:
    rng = random.Random(3)
    corpus = ["alpha", "beta"]
    text = TEXTS[0]
    for _ in range(200):
        for word in perturb(text, rng, corpus).split():
            misspelt = any(w[0] == word[0] and abs(len(w) - len(word)) <= 1 for w in text.split())
            assert word in text.split() or word in corpus or misspelt, word


def test_windows_keep_a_contiguous_half_or_more() -> None:
    policy = TransferPolicy(drop_rate=0, replace_rate=0, typo_rate=0, window_rate=1.0)
    words = TEXTS[0].split()
    rng = random.Random(5)
    seen = set()
    for _ in range(100):
        cut = perturb(TEXTS[0], rng, [], policy)
        seen.add(cut)
        assert cut in TEXTS[0] and len(cut.split()) >= (len(words) + 1) // 2
    assert len(seen) > 5
    untouched = TransferPolicy(drop_rate=0, replace_rate=0, typo_rate=0, window_rate=0)
    assert perturb(TEXTS[0], rng, ["x"], untouched) == TEXTS[0]


def test_unlabelled_examples_carry_no_gold_label_and_join_at_the_end() -> None:
    labelled = Encoded(
        ((1, 2), (3,)), {"sentiment": np.array([0, IGNORE]), "topic": np.array([IGNORE, 4])}
    )
    extra = unlabelled([(5, 6, 7)], ["sentiment", "topic"])
    assert all((v == IGNORE).all() for v in extra.labels.values())
    joined = concat(labelled, extra)
    assert joined.input_ids == ((1, 2), (3,), (5, 6, 7))
    assert joined.labels["topic"].tolist() == [IGNORE, 4, IGNORE]
    with pytest.raises(ValueError, match="tasks differ"):
        concat(labelled, unlabelled([(1,)], ["sentiment"]))


def test_transfer_copies_need_a_teacher_and_no_linear_teacher() -> None:
    with pytest.raises(TrainConfigError, match=r"transfer_copies.*needs a teacher"):
        load_config(None, transfer_copies=2)
    with pytest.raises(TrainConfigError, match=r"transfer_copies.*linear_teacher"):
        load_config(None, transfer_copies=2, teacher="t", linear_teacher={"sentiment": 0.3})
    with pytest.raises(TrainConfigError, match="transfer_copies"):
        load_config(None, transfer_copies=-1, teacher="t")
    assert load_config(None, transfer_copies=2, self_distill=True).transfer_copies == 2


def test_student_trains_on_the_copies_its_teacher_labelled(
    tiny_base: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A self-distilled run with two copies per text: the teacher (trained on gold labels alone)
    labels the copies too, and the student's epoch holds three times the examples."""
    caplog.set_level(logging.INFO)
    plain = tiny_config(tiny_base, epochs=1, self_distill=True, teacher_epochs=1)
    without = train(plain, tmp_path / "a", frames=toy_frames(), progress=False)
    config = tiny_config(
        tiny_base, epochs=1, self_distill=True, teacher_epochs=1, transfer_copies=2
    )
    result = train(config, tmp_path / "b", frames=toy_frames(), progress=False)
    n_train = sum(part["train"] for part in result.card["data"].values())
    assert result.card["run"]["steps"] == -(-3 * n_train // 16)  # batches of 16 over 3 x texts
    assert without.card["run"]["steps"] == -(-n_train // 16)
    # The teachers train on the gold-labelled texts only, as without copies.
    assert result.card["teacher"]["run"]["steps"] == without.card["teacher"]["run"]["steps"]
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("transfer set")]
    assert logged == [f"transfer set: {2 * n_train} perturbed copies labelled by the teachers"]
    assert result.card["training_config"]["transfer_copies"] == 2
