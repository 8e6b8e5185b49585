"""finmon bench classify --compare: several exported models through the engine side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.classify.bench import compare_models, format_comparison, format_report, run_bench
from tests.conftest import build_tiny_model_dir


def test_models_side_by_side(tiny_model_dir: Path, tmp_path: Path) -> None:
    other = build_tiny_model_dir(tmp_path / "entity", seed=3, entity=True)
    result = compare_models([tiny_model_dir, other], n=16, quantize="none", engine_call_items=8)
    first, second = result["models"]
    assert (first["speed_vs_first"], first["sentiment_agreement_with_first"]) == (1.0, 1.0)
    assert not first["entity_head"] and second["entity_head"]
    assert second["parameters"] > first["parameters"]  # the entity head's weights
    assert second["texts_per_s"] > 0 and 0 <= second["sentiment_agreement_with_first"] <= 1
    assert str(other) in format_comparison(result)


def test_engine_against_the_pipeline_brackets_the_pipeline_runs(tiny_model_dir: Path) -> None:
    result = run_bench(tiny_model_dir, n=16, quantize="none", engine_call_items=8)
    before, after = (
        result["pipeline_bs32_before_texts_per_s"],
        result["pipeline_bs32_after_texts_per_s"],
    )
    assert result["pipeline_bs32_texts_per_s"] == pytest.approx((before + after) / 2)
    best = max(result["pipeline_bs1_texts_per_s"], result["pipeline_bs32_texts_per_s"])
    assert result["engine_vs_best_pipeline"] == result["engine_texts_per_s"] / best
    assert result["baseline_vs_engine_fp32_label_agreement"] == 1.0  # the same function
    assert "best pipeline" in format_report(result)
