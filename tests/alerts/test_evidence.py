from __future__ import annotations

import math

from alerts.evidence import RunningTotals, binomial_glr, poisson_glr, signed_root, spans_within


def test_glr_is_zero_at_or_below_the_baseline_and_grows_with_evidence() -> None:
    assert binomial_glr(2, 10, 0.2) == 0.0 and poisson_glr(5, 5) == 0.0
    assert binomial_glr(20, 40, 0.2) > binomial_glr(10, 20, 0.2) > 0
    # one negative item: -ln p0, far from any threshold
    assert math.isclose(binomial_glr(1, 1, 0.2), -math.log(0.2))
    assert signed_root(8.0) == 4.0 and signed_root(8.0, 4.0) == 2.0


def test_spans_end_at_the_lookback() -> None:
    assert spans_within(10) == (1, 2, 3, 4, 6, 8, 10)
    assert spans_within(60)[-1] == 60


def test_running_totals_sum_the_newest_windows_and_restart() -> None:
    totals = RunningTotals(capacity=3, width=2)
    for n in range(1, 6):
        totals.push((n, 1))
    assert totals.windows == 3 and totals.sums(2) == (9.0, 2.0)  # 5 + 4
    totals.restart()
    assert totals.windows == 0
    totals.push((7, 1))
    assert totals.sums(1) == (7.0, 1.0)
