"""scripts/gpu_bench.py on CPU: its arguments and the code paths a GPU run takes, one JSON line."""

from __future__ import annotations

import json

import pytest

from tests.scripts.loader import load_script


def test_flop_estimate_grows_with_tokens_and_size() -> None:
    bench = load_script("gpu_bench")
    small, base = bench.SIZES["minilm-l6"], bench.SIZES["bert-base"]
    assert bench.flops_per_seq(small, 40.0) < bench.flops_per_seq(small, 80.0)
    assert bench.flops_per_seq(small, 40.0) < bench.flops_per_seq(base, 40.0)


@pytest.mark.integration
@pytest.mark.slow
def test_cpu_path_prints_one_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_script("gpu_bench")
    argv = ["--device", "cpu", "--n", "64", "--batches", "16", "--e2e-n", "96"]
    summary = bench.main([*argv, "--latency-sec", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0]) == summary
    assert "forward" not in summary  # the CUDA-only section
    assert summary["engine"]["engine_minilm_texts_per_s_batch_16"] > 0
    e2e = summary["e2e"]
    assert e2e["all_ids_scored"] and e2e["max_batch_items"] == 16 and e2e["crc32c"] == "c"
    assert e2e["p99_latency_ms"] is not None
