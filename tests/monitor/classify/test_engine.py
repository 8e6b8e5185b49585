from __future__ import annotations

from pathlib import Path

import pytest
import torch

from monitor.classify.engine import TorchClassifier
from monitor.classify.model import load_model, save_model
from monitor.errors import ModelLoadError
from tests.conftest import TINY_TOPICS

TEXTS = [
    "Apple beats earnings estimates, shares jump",
    "Regulators sue bank over misleading disclosures in a long complaint about fees",
    "Oil",
    "Fed holds rates steady",
]


def test_predictions_have_both_tasks_and_sum_to_one(tiny_model_dir: Path) -> None:
    clf = TorchClassifier.from_dir(tiny_model_dir, device="cpu")
    preds = clf.predict(TEXTS)
    assert len(preds) == len(TEXTS)
    for p in preds:
        assert set(p.topic_probs) == set(TINY_TOPICS)
        assert set(p.sentiment_probs) == {"negative", "neutral", "positive"}
        assert sum(p.topic_probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert -1.0 <= p.sentiment_score <= 1.0
    assert clf.version == "tiny-test"


def test_batched_equals_one_at_a_time(tiny_model_dir: Path) -> None:
    clf = TorchClassifier.from_dir(tiny_model_dir, device="cpu", max_batch_items=3)
    batched = clf.predict(TEXTS)
    single = [clf.predict([t])[0] for t in TEXTS]
    for a, b in zip(batched, single, strict=True):
        for k in a.sentiment_probs:
            assert a.sentiment_probs[k] == pytest.approx(b.sentiment_probs[k], abs=1e-4)
        assert a.topic == b.topic


def test_export_load_round_trip_is_identical(tiny_model_dir: Path, tmp_path: Path) -> None:
    model, tok = load_model(tiny_model_dir)
    again_dir = save_model(model, tok, tmp_path / "copy")
    again, _ = load_model(again_dir)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        a, b = model(**enc), again(**enc)
    for task in a:
        assert torch.equal(a[task], b[task])


def test_missing_files_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"finmon_model\.json"):
        load_model(tmp_path)
