"""``finmon bench e2e``: the classify role on the embedded broker against the engine alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.classify.bench_e2e import (
    E2EPlan,
    bench_settings,
    bench_texts,
    format_e2e_report,
    run_e2e_bench,
)


def test_settings_are_the_defaults_but_fresh_topics_and_no_cache(tiny_model_dir: Path) -> None:
    overrides = {"model": {"max_batch_items": 32}, "kafka": {"topic_partitions": 2}}
    plan = E2EPlan(settings_overrides=overrides)
    first = bench_settings(tiny_model_dir, "127.0.0.1:1", plan)
    second = bench_settings(tiny_model_dir, "127.0.0.1:1", plan)
    assert first.role == "classify" and first.model.cache_items == 0
    assert first.model.max_batch_items == 32 and first.kafka.topic_partitions == 2
    assert first.model.max_wait_ms == 20 and first.model.max_batch_tokens == 4096
    assert first.kafka.raw_topic != second.kafka.raw_topic
    assert first.kafka.classify_group != second.kafka.classify_group


def test_texts_without_shared_data_come_from_the_generator() -> None:
    texts, source = bench_texts(None, 50)
    assert source == "synthetic" and len(texts) == 50 and all(texts)


@pytest.mark.integration
@pytest.mark.slow
def test_every_item_is_scored_and_the_report_has_each_stage(tiny_model_dir: Path) -> None:
    plan = E2EPlan(n=96, latency_sec=1.0, light_sec=1.0, device="cpu", phase_timeout_sec=120)
    result = run_e2e_bench(tiny_model_dir, plan=plan, shared_data=None)
    json.dumps(result, allow_nan=False)  # --json prints valid JSON
    [run] = result["runs"]
    assert result["all_ids_scored"] and run["missing_ids"] == 0 and run["dead_letters"] == 0
    assert run["e2e_items_per_s"] > 0 and run["engine_texts_per_s"] > 0
    assert run["e2e_vs_engine"] == pytest.approx(run["e2e_items_per_s"] / run["engine_texts_per_s"])
    assert run["latency_items"] > 0
    assert 0 < run["p50_latency_ms"] <= run["p99_latency_ms"]
    assert run["light_items"] == 20  # 20 items/s for 1 s, every one scored and timed
    assert 0 < run["light_p50_latency_ms"] <= run["light_p99_latency_ms"]
    stages = run["e2e"]["stage_ms_per_item"]
    for stage in ("decode", "tokenize", "forward", "encode", "produce"):
        assert stages[stage] > 0, stage
    assert run["e2e"]["model_calls"] > 0 and run["e2e"]["queue_wait_ms_per_call"] >= 0
    assert run["latency"]["model_calls"] > 0 and run["latency"]["stage_ms_per_item"]["forward"] > 0
    assert set(run["engine"]["stage_ms_per_item"]) <= {"tokenize", "forward", "postprocess"}
    assert "e2e / engine" in format_e2e_report(result)
