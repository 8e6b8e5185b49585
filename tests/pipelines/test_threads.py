from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.threads import busy_share, choose_wait_policy, measure_busy_share


def test_busy_share_from_two_stat_lines() -> None:
    before = [100, 0, 50, 800, 50, 0, 0, 0]
    after = [160, 0, 70, 900, 70, 0, 0, 0]  # 80 busy, 120 idle + iowait
    assert busy_share(before, after) == pytest.approx(0.4)
    assert busy_share(before, before) == 0.0


def test_idle_cpu_keeps_the_default_spin_and_busy_or_unknown_sleeps() -> None:
    assert choose_wait_policy(0.05) is None
    assert choose_wait_policy(0.9) == "PASSIVE"
    assert choose_wait_policy(None) == "PASSIVE"


def test_measure_reads_a_stat_file_and_tolerates_a_missing_one(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\n")
    assert measure_busy_share(stat, sample_sec=0.0) == 0.0  # unchanged counters: nothing ran
    assert measure_busy_share(tmp_path / "absent", sample_sec=0.0) is None


def test_a_policy_set_by_the_user_wins() -> None:
    code = (
        "import os, sys; from pipelines.threads import set_training_wait_policy;"
        "print(set_training_wait_policy())"
    )
    env = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "ACTIVE"
