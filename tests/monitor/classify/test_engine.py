from __future__ import annotations

from pathlib import Path

import pytest
import torch

from monitor.classify.engine import TorchClassifier
from monitor.classify.longtext import LongTextPolicy
from monitor.classify.model import load_model, save_model
from monitor.errors import ModelLoadError
from monitor.metrics import Metrics
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


def test_token_budget_batching_matches_one_at_a_time(
    tiny_model_dir: Path, metrics: Metrics
) -> None:
    clf = TorchClassifier.from_dir(
        tiny_model_dir, device="cpu", max_batch_items=64, max_batch_tokens=48, metrics=metrics
    )
    batched = clf.predict(TEXTS * 3)
    single = [clf.predict([t])[0] for t in TEXTS]
    for a, b in zip(batched, single * 3, strict=True):
        assert a.sentiment_probs == pytest.approx(b.sentiment_probs, abs=1e-4)
        assert a.topic_probs == pytest.approx(b.topic_probs, abs=1e-4)
    # a budget of 48 padded tokens forces several batches, none over budget unless alone
    batches = metrics.registry.get_sample_value("finmon_classify_batch_size_items_count")
    assert batches is not None and batches >= 2


def test_cache_answers_repeats_without_the_model(tiny_model_dir: Path, metrics: Metrics) -> None:
    clf = TorchClassifier.from_dir(tiny_model_dir, device="cpu", cache_items=10, metrics=metrics)
    first = clf.predict(["Fed holds  rates steady", "Oil"])
    batches = metrics.registry.get_sample_value("finmon_classify_batch_size_items_count")
    again = clf.predict(
        ["Fed holds rates steady", "Fed holds rates steady"]
    )  # same once normalised
    assert again == [first[0], first[0]]
    assert metrics.registry.get_sample_value("finmon_classify_cache_hits_total") == 2
    assert metrics.registry.get_sample_value("finmon_classify_batch_size_items_count") == batches


def test_long_text_is_windowed_not_truncated(tiny_model_dir: Path, metrics: Metrics) -> None:
    head = "Regulators sue bank over misleading disclosures"
    body = " ".join(["Shares of the lender fell sharply after the filing."] * 40)
    chunked = TorchClassifier.from_dir(tiny_model_dir, device="cpu", max_length_tokens=32)
    truncated = TorchClassifier.from_dir(
        tiny_model_dir,
        device="cpu",
        max_length_tokens=32,
        long_text=LongTextPolicy(strategy="truncate"),
        metrics=metrics,
    )
    long_pred = chunked.predict([head + ". " + body])[0]
    cut_pred = truncated.predict([head + ". " + body])[0]
    assert sum(long_pred.sentiment_probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert long_pred.sentiment_probs != pytest.approx(cut_pred.sentiment_probs, abs=1e-6)
    # the truncating engine only sees the first window, as the old engine did
    batch_tokens = metrics.registry.get_sample_value("finmon_classify_batch_tokens_sum")
    assert batch_tokens == 32


def test_int8_keeps_predictions_close(tiny_model_dir: Path) -> None:
    fp32 = TorchClassifier.from_dir(tiny_model_dir, device="cpu")
    int8 = TorchClassifier.from_dir(tiny_model_dir, device="cpu", quantize="int8")
    assert int8.precision == "int8" and fp32.precision == "none"
    for a, b in zip(fp32.predict(TEXTS), int8.predict(TEXTS), strict=True):
        assert a.sentiment_probs == pytest.approx(b.sentiment_probs, abs=0.05)


def test_bf16_keeps_predictions_close(tiny_model_dir: Path) -> None:
    fp32 = TorchClassifier.from_dir(tiny_model_dir, device="cpu", quantize="none")
    bf16 = TorchClassifier.from_dir(tiny_model_dir, device="cpu", quantize="bf16")
    assert bf16.precision == "bf16"
    for a, b in zip(fp32.predict(TEXTS), bf16.predict(TEXTS), strict=True):
        assert a.sentiment_probs == pytest.approx(b.sentiment_probs, abs=0.05)


def test_auto_precision_is_bf16_only_on_native_bf16_cpus(tiny_model_dir: Path) -> None:
    from monitor.classify.quantize import cpu_has_bf16

    auto = TorchClassifier.from_dir(tiny_model_dir, device="cpu", quantize="auto")
    assert auto.precision == ("bf16" if cpu_has_bf16() else "none")


def test_bf16_serving_casts_linear_weights_once_and_keeps_autocast_outputs(
    tiny_model_dir: Path,
) -> None:
    reference, tok = load_model(tiny_model_dir)
    clf = TorchClassifier.from_dir(tiny_model_dir, device="cpu", quantize="bf16")
    linears = [m for m in clf.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = reference.encoder(**enc).last_hidden_state
        logits = reference.logits(reference.pool(hidden, enc["attention_mask"]))
    for task in ("sentiment", "topic"):
        want = torch.softmax(logits[task].float(), dim=-1)
        names = reference.meta.labels[task]
        for row, pred in zip(want.tolist(), clf.predict(TEXTS), strict=True):
            got = pred.sentiment_probs if task == "sentiment" else pred.topic_probs
            assert [got[n] for n in names] == pytest.approx(row, abs=2e-3)  # bf16 kernels


def test_cpu_forward_batches_run_on_two_workers_with_the_same_outputs(
    tiny_model_dir: Path,
) -> None:
    import threading

    pooled = TorchClassifier.from_dir(tiny_model_dir, device="cpu", threads=2)
    inline = TorchClassifier.from_dir(tiny_model_dir, device="cpu", threads=1)
    assert (pooled.forward_workers, inline.forward_workers) == (2, 1)
    seen: list[tuple[str, int]] = []
    pooled.model.encoder.register_forward_pre_hook(
        lambda *_: seen.append((threading.current_thread().name, torch.get_num_threads()))
    )
    got, want = pooled.predict(TEXTS), inline.predict(TEXTS)
    # One call of four texts is one batch by the split, halved for the two workers.
    assert len(seen) == 2 and all(n.startswith("finmon-forward") and t == 1 for n, t in seen)
    for a, b in zip(got, want, strict=True):
        assert a.sentiment_probs == pytest.approx(b.sentiment_probs, abs=1e-5)
        assert a.topic_probs == pytest.approx(b.topic_probs, abs=1e-5)


def test_temperature_survives_export_and_softens_probabilities(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from dataclasses import replace

    model, tok = load_model(tiny_model_dir)
    plain = TorchClassifier(model, tok, device=torch.device("cpu"), version="t1").predict(TEXTS)
    model.meta = replace(model.meta, temperatures={"sentiment": 4.0})
    warm_dir = save_model(model, tok, tmp_path / "calibrated")
    warm = TorchClassifier.from_dir(warm_dir, device="cpu").predict(TEXTS)
    assert load_model(warm_dir)[0].meta.temperatures == {"sentiment": 4.0}
    for a, b in zip(plain, warm, strict=True):
        assert a.sentiment == b.sentiment
        assert max(b.sentiment_probs.values()) <= max(a.sentiment_probs.values()) + 1e-6
        assert a.topic_probs == pytest.approx(b.topic_probs, abs=1e-6)  # topic untouched
