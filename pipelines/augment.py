"""Typo and casing augmentation of the training texts, drawn afresh each epoch.

A share of the training examples (``augment_rate``) is replaced, for one epoch, by a noisy copy
(``pipelines.noise``, a milder policy than the one ``finmon evaluate`` measures robustness with).
Labels and teacher targets stay those of the clean text, as in Noisy Student training. Pure in
its inputs: the same seed and epoch give the same texts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial

from transformers import PreTrainedTokenizerBase

from pipelines.batching import Encoded, token_ids
from pipelines.noise import NoisePolicy, add_noise

# Lighter than the evaluation's DEFAULT_NOISE (0.15): most real typos are sparse.
TRAIN_NOISE = NoisePolicy(word_typo_rate=0.1)

Tokenize = Callable[[list[str]], list[tuple[int, ...]]]


class EpochAugmenter:
    """Gives each epoch its training examples, with ``rate`` of them noised. Caches one epoch."""

    def __init__(
        self,
        base: Encoded,
        texts: Sequence[str],
        tokenize: Tokenize,
        *,
        rate: float,
        seed: int,
        policy: NoisePolicy = TRAIN_NOISE,
    ) -> None:
        if len(texts) != len(base):
            raise ValueError(f"{len(texts)} texts for {len(base)} encoded examples")
        self.base = base
        self.texts = list(texts)
        self.tokenize = tokenize
        self.rate = rate
        self.seed = seed
        self.policy = policy
        self._cached: tuple[int, Encoded] | None = None

    def epoch(self, epoch: int) -> Encoded:
        if self.rate <= 0:
            return self.base
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, self._noised(epoch))
        return self._cached[1]

    def _noised(self, epoch: int) -> Encoded:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        chosen = [i for i in range(len(self.texts)) if rng.random() < self.rate]
        noisy = [add_noise(self.texts[i], rng, self.policy) for i in chosen]
        ids = list(self.base.input_ids)
        for i, row in zip(chosen, self.tokenize(noisy), strict=True):
            ids[i] = row
        return replace(self.base, input_ids=tuple(ids))


def tokenizer_fn(tokenizer: PreTrainedTokenizerBase, max_length_tokens: int) -> Tokenize:
    """Wrap a Hugging Face tokenizer as ``texts -> token id tuples`` (truncated)."""
    return partial(token_ids, tokenizer, max_length_tokens=max_length_tokens)


__all__ = ["TRAIN_NOISE", "EpochAugmenter", "tokenizer_fn"]
