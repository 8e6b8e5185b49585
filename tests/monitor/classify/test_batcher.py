"""Micro-batcher boundaries with a fake millisecond clock: budget, count, wait, push-back, bound."""

from __future__ import annotations

import random

import pytest

from monitor.classify.batcher import (
    BatchPolicy,
    MicroBatcher,
    padded_tokens,
    split_batches,
    spread,
)


class FakeClock:
    def __init__(self) -> None:
        self.now_ms = 1_000

    def __call__(self) -> int:
        return self.now_ms


def make(**policy: int) -> tuple[MicroBatcher[str], FakeClock]:
    clock = FakeClock()
    return MicroBatcher(BatchPolicy(**policy), clock), clock


def test_waits_until_max_wait_then_closes_on_wait() -> None:
    batcher, clock = make(max_batch_items=8, max_batch_tokens=1000, max_wait_ms=20)
    batcher.offer("a", 10)
    clock.now_ms += 19
    assert batcher.poll() is None
    assert batcher.due_in_ms() == 1
    clock.now_ms += 1
    batch = batcher.poll()
    assert batch is not None and batch.reason == "wait"
    assert [p.payload for p in batch.items] == ["a"]
    assert batcher.depth == 0 and batcher.due_in_ms() is None


def test_closes_at_item_count_without_waiting() -> None:
    batcher, _ = make(max_batch_items=3, max_batch_tokens=1000, max_wait_ms=10_000)
    for name in "abcd":
        batcher.offer(name, 5)
    batch = batcher.poll()
    assert batch is not None and batch.reason == "items"
    assert sorted(p.payload for p in batch.items) == ["a", "b", "c"]
    assert batcher.depth == 1
    assert batcher.poll() is None  # "d" alone waits for its deadline


def test_overflowing_item_is_pushed_back_to_head_of_next_batch() -> None:
    # a call's budget is its tokens summed: 10+10 -> 20 fits 40; adding a 30-token item -> 50 > 40.
    batcher, _ = make(max_batch_items=8, max_batch_tokens=40, max_wait_ms=10_000)
    for name, n in (("a", 10), ("b", 10), ("long", 30), ("c", 5)):
        batcher.offer(name, n)
    first = batcher.poll()
    assert first is not None and first.reason == "tokens"
    assert [p.payload for p in first.items] == ["a", "b"]
    assert first.padded_tokens == 20
    second = batcher.poll(flush=True)
    assert second is not None and second.items[-1].payload == "long"
    assert sum(p.n_tokens for p in second.items) <= 40


def test_a_long_item_does_not_shrink_the_call_to_its_padded_size() -> None:
    # 1 x 30 tokens then 9 x 3: padded first-in first-out that is 30 x 10 = 300 > 64, but the
    # engine sorts the call and pads each forward batch itself; summed, 57 tokens fit.
    batcher, _ = make(max_batch_items=16, max_batch_tokens=64, max_wait_ms=0)
    batcher.offer("long", 30)
    for i in range(9):
        batcher.offer(f"short{i}", 3)
    batch = batcher.poll()
    assert batch is not None and len(batch.items) == 10


def test_budget_boundary_is_inclusive() -> None:
    batcher, _ = make(max_batch_items=8, max_batch_tokens=40, max_wait_ms=10_000)
    for name in "abcd":
        batcher.offer(name, 10)  # 4 x 10 == 40 exactly: fits
    batcher.offer("e", 10)  # 5 x 10 > 40
    batch = batcher.poll()
    assert batch is not None and len(batch.items) == 4 and batch.reason == "tokens"


def test_item_larger_than_budget_goes_alone() -> None:
    batcher, _ = make(max_batch_items=8, max_batch_tokens=16, max_wait_ms=10_000)
    batcher.offer("huge", 64)
    batcher.offer("small", 4)
    batch = batcher.poll()
    assert batch is not None and [p.payload for p in batch.items] == ["huge"]


def test_batch_is_sorted_by_length() -> None:
    batcher, _ = make(max_batch_items=3, max_batch_tokens=1000, max_wait_ms=0)
    for name, n in (("x", 9), ("y", 2), ("z", 5)):
        batcher.offer(name, n)
    batch = batcher.poll()
    assert batch is not None
    assert [p.n_tokens for p in batch.items] == [2, 5, 9]


def test_full_queue_signals_backpressure_and_recovers() -> None:
    batcher, _ = make(max_batch_items=2, max_batch_tokens=1000, max_wait_ms=0, max_queue_items=3)
    assert all(batcher.offer(str(i), 4) for i in range(3))
    assert batcher.is_full
    assert batcher.offer("rejected", 4) is False
    assert batcher.depth == 3
    assert batcher.poll() is not None
    assert not batcher.is_full and batcher.offer("accepted", 4)


def test_flush_returns_partial_batch_before_deadline() -> None:
    batcher, _ = make(max_batch_items=8, max_batch_tokens=1000, max_wait_ms=10_000)
    batcher.offer("a", 3)
    assert batcher.poll() is None
    batch = batcher.poll(flush=True)
    assert batch is not None and batch.reason == "flush"


def test_invalid_policy_and_length_fail_loudly() -> None:
    with pytest.raises(ValueError):
        BatchPolicy(max_batch_items=0)
    batcher, _ = make()
    with pytest.raises(ValueError):
        batcher.offer("empty", 0)


def test_split_batches_respects_both_bounds_and_covers_every_index() -> None:
    lengths = [5, 40, 7, 7, 12, 3, 100, 9, 9, 9]
    batches = split_batches(lengths, max_items=3, max_tokens=40)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 40
    assert [6] in batches  # 100 tokens: alone


def _cost(lengths: list[int], batches: list[list[int]], per_batch: int) -> int:
    return sum(padded_tokens([lengths[i] for i in b]) + per_batch for b in batches)


def _least_cost(lengths: list[int], max_items: int, max_tokens: int, per_batch: int) -> int:
    """Brute force: every way to cut the sorted lengths into runs that keep both bounds."""
    ordered = sorted(lengths)
    best = None
    for mask in range(1 << (len(ordered) - 1)):
        runs, run = [], [ordered[0]]
        for k, n in enumerate(ordered[1:]):
            if mask >> k & 1:
                runs.append(run)
                run = []
            run.append(n)
        runs.append(run)
        fits = [len(r) <= max_items and max(r) * len(r) <= max_tokens for r in runs]
        if all(ok or len(r) == 1 for ok, r in zip(fits, runs, strict=True)):
            cost = sum(padded_tokens(r) + per_batch for r in runs)
            best = cost if best is None else min(best, cost)
    assert best is not None
    return best


@pytest.mark.parametrize("per_batch", [0, 7, 40, 1000])
def test_split_batches_finds_the_least_padded_plus_per_batch_cost(per_batch: int) -> None:
    rng = random.Random(per_batch)
    for _ in range(60):
        lengths = [rng.choice([3, 5, 8, 13, 21, 34, 60]) for _ in range(rng.randint(1, 9))]
        batches = split_batches(lengths, max_items=4, max_tokens=90, batch_cost_tokens=per_batch)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        for batch in batches:
            assert len(batch) == 1 or (
                len(batch) <= 4 and max(lengths[i] for i in batch) * len(batch) <= 90
            )
        assert _cost(lengths, batches, per_batch) == _least_cost(lengths, 4, 90, per_batch)


def test_split_batches_cuts_off_a_long_tail_when_padding_outweighs_a_forward() -> None:
    lengths = [12] * 30 + [60]
    # one batch pads 31 items to 60 tokens (1,860); apart, 30 x 12 + 60 = 420 plus one forward
    assert split_batches(lengths, 256, 4096, batch_cost_tokens=256) == [list(range(30)), [30]]
    # a forward that costs more than the 1,440 padded tokens saved keeps the call whole
    assert len(split_batches(lengths, 256, 4096, batch_cost_tokens=1500)) == 1
    # None: the fewest batches, as greedy packing under the budget gives
    assert len(split_batches(lengths, 256, 4096)) == 1
    assert len(split_batches(lengths, 256, 1000)) == 2


def test_spread_halves_the_largest_batch_until_every_worker_has_one() -> None:
    assert spread([[0, 1, 2, 3, 4]], 2) == [[0, 1], [2, 3, 4]]
    assert spread([[0, 1, 2], [3, 4, 5, 6, 7, 8]], 3) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert spread([[0, 1], [2]], 2) == [[0, 1], [2]]  # already enough: unchanged
    assert spread([[0]], 4) == [[0]]  # one item cannot be split
    assert spread([], 2) == []
