from __future__ import annotations

import itertools

import pytest

from pipelines.schedule import BudgetProbe, WarmupLinear, fit_total_steps, planned_steps


def test_warmup_then_linear_decay() -> None:
    schedule = WarmupLinear(warmup_steps=4, total_steps=24)
    factors = [schedule.factor(s) for s in range(25)]
    assert factors[0] == pytest.approx(0.2)
    assert factors[3] == pytest.approx(0.8)
    assert factors[4] == pytest.approx(1.0)
    assert factors[14] == pytest.approx(0.5)
    assert factors[24] == 0.0
    assert all(a >= b for a, b in itertools.pairwise(factors[4:]))


def test_warmup_is_at_most_half_a_short_run() -> None:
    assert WarmupLinear(warmup_steps=100, total_steps=10).factor(5) == pytest.approx(1.0)


def test_planned_steps_allows_fractional_epochs() -> None:
    assert planned_steps(100, 32, 1.5) == (4, 6)


def test_fit_total_steps_shrinks_to_budget() -> None:
    probe = BudgetProbe(
        done_steps=20, elapsed_sec=20.0, sec_per_step=1.0, sec_per_eval=10.0, steps_per_eval=50
    )
    fitted = fit_total_steps(probe, total_steps=1000, budget_sec=120.0, margin=1.0)
    # 90 s left after the final evaluation, 1.2 s per step including evaluations
    assert fitted == 20 + 75


def test_fit_total_steps_never_exceeds_plan_or_goes_back() -> None:
    probe = BudgetProbe(
        done_steps=20, elapsed_sec=500.0, sec_per_step=1.0, sec_per_eval=1.0, steps_per_eval=10
    )
    assert fit_total_steps(probe, total_steps=1000, budget_sec=100.0) == 20
    assert fit_total_steps(probe, total_steps=30, budget_sec=10_000.0) == 30
