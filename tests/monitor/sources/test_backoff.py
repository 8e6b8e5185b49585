from __future__ import annotations

from monitor.sources.backoff import MAX_RETRY_AFTER_SEC, BackoffPolicy

POLICY = BackoffPolicy(initial_sec=10.0, max_sec=100.0)


def test_exponential_and_capped() -> None:
    assert [POLICY.delay_sec(n) for n in (1, 2, 3, 4, 5, 50)] == [10, 20, 40, 80, 100, 100]


def test_retry_after_wins_when_longer() -> None:
    assert POLICY.delay_sec(1, retry_after_sec=300.0) == 300.0
    assert POLICY.delay_sec(3, retry_after_sec=5.0) == 40.0
    assert POLICY.delay_sec(1, retry_after_sec=1e9) == MAX_RETRY_AFTER_SEC
