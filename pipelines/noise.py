"""Seeded typo and casing noise, to measure how much predictions move under sloppy input."""

from __future__ import annotations

import random
from dataclasses import dataclass

_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {
    ch: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
    for row in _KEYBOARD_ROWS
    for i, ch in enumerate(row)
}


@dataclass(frozen=True, kw_only=True)
class NoisePolicy:
    """``word_typo_rate``: chance that a word of ``min_word_chars`` or more gets one typo
    (swap, drop, double or neighbour-key substitution); ``casing``: whether the whole text is
    sometimes lower- or upper-cased."""

    word_typo_rate: float = 0.15
    min_word_chars: int = 4
    casing: bool = True


DEFAULT_NOISE = NoisePolicy()


def typo(word: str, rng: random.Random) -> str:
    """One random edit inside ``word`` (its first character is kept)."""
    i = rng.randrange(1, len(word))
    kind = rng.randrange(4)
    if kind == 0 and i < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    options = _NEIGHBOURS.get(word[i].lower(), "")
    return word[:i] + rng.choice(options) + word[i + 1 :] if options else word[:i] + word[i + 1 :]


def add_noise(text: str, rng: random.Random, policy: NoisePolicy = DEFAULT_NOISE) -> str:
    """``text`` with typos in some alphabetic words and, maybe, its casing changed."""
    words = [
        typo(w, rng)
        if w.isalpha() and len(w) >= policy.min_word_chars and rng.random() < policy.word_typo_rate
        else w
        for w in text.split(" ")
    ]
    noisy = " ".join(words)
    if policy.casing:
        pick = rng.randrange(3)
        noisy = noisy.lower() if pick == 0 else noisy.upper() if pick == 1 else noisy
    return noisy


def noisy_copies(texts: list[str], seed: int, policy: NoisePolicy = DEFAULT_NOISE) -> list[str]:
    rng = random.Random(seed)
    return [add_noise(t, rng, policy) for t in texts]
