"""Micro-batching by token budget, item count and wait, with an injected millisecond clock.

Pure logic, no threads and no torch: the owner of the model calls :meth:`MicroBatcher.offer` and
:meth:`MicroBatcher.poll`. A batch closes on whichever comes first:

- the token budget: the items' tokens summed would exceed ``max_batch_tokens`` with the next item;
  that item is pushed back and heads the next batch;
- the item count: ``max_batch_items`` items are queued;
- the wait: the oldest queued item has waited ``max_wait_ms``.

A batch here is one model call. The engine sorts each call by exact length and packs it into
forward batches padded to their longest item under the same budget (:func:`split_batches`), so
the call is bounded by its work, the tokens summed: a bound on first-in first-out padding (one
long item times the items before it) cut calls to about 160 tweets where 256 pad less once
sorted (docs/bench-e2e.md).

The queue holds at most ``max_queue_items``; :meth:`offer` returns False when it is full, which is
the backpressure signal (the Kafka worker pauses its partitions and keeps polling). Items the
batcher holds are not yet classified, so their offsets must not be committed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import numpy as np

T = TypeVar("T")
CloseReason = Literal["tokens", "items", "wait", "flush"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchPolicy:
    """When a batch closes, and how many items may wait."""

    max_batch_items: int = 256
    max_batch_tokens: int = 8192  # summed over a call: twice the engine's forward budget
    max_wait_ms: int = 20
    max_queue_items: int = 1024

    def __post_init__(self) -> None:
        if min(self.max_batch_items, self.max_batch_tokens, self.max_queue_items) < 1:
            raise ValueError(f"batch policy bounds must be >= 1, got {self}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")


@dataclass(frozen=True, slots=True)
class Pending(Generic[T]):
    """One queued item: what it carries, its length in tokens, when it arrived."""

    payload: T
    n_tokens: int
    enqueued_ms: int


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    """Items sorted by length (shortest first), why the batch closed, its padded size."""

    items: tuple[Pending[T], ...]
    reason: CloseReason

    @property
    def padded_tokens(self) -> int:
        return max(i.n_tokens for i in self.items) * len(self.items)


def padded_tokens(lengths: Sequence[int]) -> int:
    """Tokens of a batch padded to its longest item."""
    return max(lengths, default=0) * len(lengths)


def _take_call(lengths: Sequence[int], max_items: int, max_tokens: int) -> tuple[int, bool]:
    """How many leading items one call takes (their tokens summed within the budget), and
    whether a bound closed it. An item over the budget on its own is a call by itself."""
    total = 0
    for count, n in enumerate(lengths):
        if count == max_items:
            return count, True
        total += n
        if count > 0 and total > max_tokens:
            return count, True
    return len(lengths), len(lengths) >= max_items


def split_batches(
    lengths: Sequence[int], max_items: int, max_tokens: int, batch_cost_tokens: int | None = None
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches for a call that has all items at hand.

    Items are sorted by length, so each batch is a run of neighbours padded to its longest.
    The runs minimise the call's cost, modelled as the padded tokens plus ``batch_cost_tokens``
    per batch (what one forward costs beyond its tokens: dispatch, and the lower efficiency of
    small matrices), under both bounds; None gives the fewest batches (a batch costs as much as a
    full one). An item longer than the budget on its own gets a batch to itself. Ties go to the
    larger batch. Exact (dynamic programming over the sorted lengths), O(n * max_items).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    if n == 0:
        return []
    cost_per_batch = max_tokens if batch_cost_tokens is None else batch_cost_tokens
    if cost_per_batch < 0:
        raise ValueError(f"batch_cost_tokens must be >= 0, got {batch_cost_tokens}")
    sorted_lengths = np.fromiter((lengths[i] for i in order), dtype=np.int64, count=n)
    # best[j]: the least cost of the first j sorted items; start[j]: where its last batch begins.
    best = np.zeros(n + 1, dtype=np.int64)
    start = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        longest = int(sorted_lengths[j - 1])
        fits = max(1, min(max_items, max_tokens // max(longest, 1)))
        first = max(0, j - fits)
        sizes = np.arange(j - first, 0, -1, dtype=np.int64)  # batch sizes for starts first..j-1
        costs = best[first:j] + sizes * longest
        k = int(np.argmin(costs))
        best[j] = costs[k] + cost_per_batch
        start[j] = first + k
    batches: list[list[int]] = []
    end = n
    while end > 0:
        begin = int(start[end])
        batches.append(order[begin:end])
        end = begin
    batches.reverse()
    return batches


def spread(batches: list[list[int]], parts: int) -> list[list[int]]:
    """``batches`` with the largest halved (by items, neighbours kept together) until there are
    at least ``parts`` of them or every batch is one item: work for ``parts`` forward workers."""
    out = [list(b) for b in batches]
    while len(out) < parts:
        largest = max(range(len(out)), key=lambda i: len(out[i]), default=None)
        if largest is None or len(out[largest]) < 2:
            break
        batch = out.pop(largest)
        half = len(batch) // 2
        out[largest:largest] = [batch[:half], batch[half:]]
    return out


class MicroBatcher(Generic[T]):
    """A bounded FIFO that hands out batches. Not thread-safe: one owner calls it."""

    def __init__(self, policy: BatchPolicy, clock_ms: Callable[[], int]) -> None:
        self._policy = policy
        self._clock_ms = clock_ms
        self._queue: deque[Pending[T]] = deque()

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def is_full(self) -> bool:
        return len(self._queue) >= self._policy.max_queue_items

    def offer(self, payload: T, n_tokens: int) -> bool:
        """Queue one item; False (nothing queued) when the queue is full. Never blocks."""
        if n_tokens < 1:
            raise ValueError(f"n_tokens must be >= 1, got {n_tokens}")
        if self.is_full:
            return False
        self._queue.append(Pending(payload, n_tokens, self._clock_ms()))
        return True

    def due_in_ms(self) -> int | None:
        """Milliseconds until the oldest item's wait runs out (0: due now); None when empty."""
        if not self._queue:
            return None
        waited = self._clock_ms() - self._queue[0].enqueued_ms
        return max(0, self._policy.max_wait_ms - waited)

    def poll(self, *, flush: bool = False) -> Batch[T] | None:
        """The next closed batch, or None while it should wait. ``flush`` ignores the wait."""
        if not self._queue:
            return None
        policy = self._policy
        lengths = [p.n_tokens for p in self._queue]
        count, bound_hit = _take_call(lengths, policy.max_batch_items, policy.max_batch_tokens)
        reason: CloseReason
        if bound_hit:
            over_budget = count < len(lengths) and count < policy.max_batch_items
            reason = "tokens" if over_budget else "items"
        elif self.due_in_ms() == 0:
            reason = "wait"
        elif flush:
            reason = "flush"
        else:
            return None
        taken = [self._queue.popleft() for _ in range(max(count, 1))]
        return Batch(tuple(sorted(taken, key=lambda p: p.n_tokens)), reason)
