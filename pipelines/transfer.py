"""A larger transfer set for distillation: perturbed copies of the training texts.

The student learns from the teacher wherever the teacher has an opinion, not only on the texts
that carry a gold label. ``transfer_copies`` perturbed copies of every training text (words
dropped, replaced by other words of the corpus, misspelt, and some texts cut to a window) join
the training set with no gold label; the teachers label each copy as it reads, so the target
follows whatever the perturbation did to the meaning (Tang et al. 2019, "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks"). Only training texts are
perturbed: the holdout and test sets never reach this module. Pure and seeded.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.batching import IGNORE, Encoded
from pipelines.noise import typo


@dataclass(frozen=True, kw_only=True)
class TransferPolicy:
    """Per word: ``drop_rate`` drops it, ``replace_rate`` swaps in a word drawn from the corpus
    (by frequency), ``typo_rate`` misspells it (words of ``min_typo_chars`` or more). Then
    ``window_rate`` of the texts are cut to a random window of at least half their words."""

    drop_rate: float = 0.1
    replace_rate: float = 0.1
    typo_rate: float = 0.05
    min_typo_chars: int = 4
    window_rate: float = 0.25


DEFAULT_TRANSFER = TransferPolicy()


def perturb(
    text: str, rng: random.Random, corpus: Sequence[str], policy: TransferPolicy = DEFAULT_TRANSFER
) -> str:
    """One perturbed copy of ``text``; ``corpus`` is the word list replacements are drawn from
    (with repeats, so common words come up more often). Never empty for a non-empty text."""
    words = text.split()
    out: list[str] = []
    for word in words:
        roll = rng.random()
        if roll < policy.drop_rate:
            continue
        if roll < policy.drop_rate + policy.replace_rate and corpus:
            out.append(rng.choice(corpus))
        elif (
            roll < policy.drop_rate + policy.replace_rate + policy.typo_rate
            and len(word) >= policy.min_typo_chars
        ):
            out.append(typo(word, rng))
        else:
            out.append(word)
    if not out:
        out = [rng.choice(words)] if words else []
    if len(out) > 3 and rng.random() < policy.window_rate:
        size = rng.randint((len(out) + 1) // 2, len(out))
        start = rng.randint(0, len(out) - size)
        out = out[start : start + size]
    return " ".join(out)


def transfer_texts(
    texts: Sequence[str], copies: int, seed: int, policy: TransferPolicy = DEFAULT_TRANSFER
) -> list[str]:
    """``copies`` perturbed copies of each text, copy by copy (``copies * len(texts)`` texts,
    the k-th copy of text i at ``k * len(texts) + i``). The same inputs give the same copies."""
    corpus = [word for text in texts for word in text.split()]
    rng = random.Random(seed * 7_919 + 1)
    return [perturb(text, rng, corpus, policy) for _ in range(copies) for text in texts]


def unlabelled(input_ids: Sequence[tuple[int, ...]], tasks: Sequence[str]) -> Encoded:
    """Examples with no gold label for any task (``IGNORE``): the teachers' targets alone
    teach them."""
    return Encoded(
        tuple(input_ids), {t: np.full(len(input_ids), IGNORE, dtype=np.int64) for t in tasks}
    )


def concat(first: Encoded, second: Encoded) -> Encoded:
    """``first``'s examples, then ``second``'s (the same tasks)."""
    if set(first.labels) != set(second.labels):
        raise ValueError(f"tasks differ: {sorted(first.labels)} vs {sorted(second.labels)}")
    return Encoded(
        first.input_ids + second.input_ids,
        {t: np.concatenate([v, second.labels[t]]) for t, v in first.labels.items()},
    )


__all__ = [
    "DEFAULT_TRANSFER",
    "TransferPolicy",
    "concat",
    "perturb",
    "transfer_texts",
    "unlabelled",
]
