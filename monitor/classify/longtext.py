"""What happens to a text longer than the model's window: a documented strategy, not a silent cut.

``chunk_mean`` (the default): the token sequence is cut into windows of at most
``max_content_tokens`` (the model limit less its special tokens) that overlap by
``overlap_tokens``. The first window always starts at token 0, so it holds the headline (a message
is classified as ``headline + body`` text, headline first); up to ``max_chunks`` windows are kept,
the rest of a very long body is ignored. Each window is classified on its own and the item's
probabilities are the weighted mean of the windows' probabilities, the first window weighted
``head_weight`` and the others 1, so the headline is never outvoted by boilerplate alone.

``truncate``: only the first window (the pre-batcher behaviour).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

LongTextStrategy = Literal["chunk_mean", "truncate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LongTextPolicy:
    strategy: LongTextStrategy = "chunk_mean"
    max_chunks: int = 8
    overlap_tokens: int = 16
    head_weight: float = 2.0

    def __post_init__(self) -> None:
        if self.max_chunks < 1 or self.overlap_tokens < 0 or self.head_weight <= 0:
            raise ValueError(f"invalid long-text policy {self}")


Span = tuple[int, int]


def plan_spans(n_tokens: int, max_content_tokens: int, policy: LongTextPolicy) -> list[Span]:
    """``[start, end)`` token windows to classify for a text of ``n_tokens`` content tokens."""
    if max_content_tokens < 1:
        raise ValueError(f"max_content_tokens must be >= 1, got {max_content_tokens}")
    if n_tokens <= max_content_tokens or policy.strategy == "truncate":
        return [(0, min(max(n_tokens, 0), max_content_tokens))]
    stride = max(1, max_content_tokens - min(policy.overlap_tokens, max_content_tokens - 1))
    spans: list[Span] = []
    start = 0
    while len(spans) < policy.max_chunks:
        spans.append((start, min(start + max_content_tokens, n_tokens)))
        if start + max_content_tokens >= n_tokens:
            break
        start += stride
    return spans


def span_weights(n_spans: int, policy: LongTextPolicy) -> list[float]:
    """The head window weighs ``head_weight``; every later window weighs 1."""
    return [policy.head_weight] + [1.0] * (n_spans - 1)


def combine(probs: Sequence[Mapping[str, float]], weights: Sequence[float]) -> dict[str, float]:
    """Weighted mean of per-window probabilities (still sums to 1)."""
    if not probs or len(probs) != len(weights):
        raise ValueError(f"need one weight per window, got {len(probs)} and {len(weights)}")
    total = sum(weights)
    return {
        label: sum(p[label] * w for p, w in zip(probs, weights, strict=True)) / total
        for label in probs[0]
    }
