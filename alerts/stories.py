"""Syndication-aware counting: near-duplicate headlines within a time window are one story.

Thirty outlets running one wire story are one piece of news, not thirty. Each headline is
normalised (lower case, punctuation and outlet tags such as "- Reuters" dropped), cut into word
2-shingles, and summarised by a 16-value MinHash signature. Locality-sensitive hashing (8 bands
of 2 values) finds earlier stories that may be similar; a candidate is the same story when the
signatures agree on at least ``threshold`` of their values (an estimate of the Jaccard similarity
of the shingle sets). The first item of a story names it (``story_id``); later ones are repeats.

Bounded: at most ``max_stories`` stories, each forgotten ``window_ms`` after it was first seen.
Deterministic (blake2b), so a restored index gives the same answers, and small
enough to checkpoint with the aggregator (a signature is 16 integers).
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections import OrderedDict
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

SIGNATURE_SIZE = 16
BANDS = 8
ROWS = SIGNATURE_SIZE // BANDS
_DIGEST_BYTES = 4 * SIGNATURE_SIZE
_UNPACK = struct.Struct(f"<{SIGNATURE_SIZE}I").unpack
_WORD = re.compile(r"[a-z0-9$%&]+(?:['.][a-z0-9]+)*")
# Trailing or leading outlet tags: "... - Reuters", "(Bloomberg) ...", "... | CNBC", "... (AP)".
_OUTLET = re.compile(r"^\s*\([^)]{1,40}\)\s*|\s*\([^)]{1,40}\)\s*$|\s+[-|:]\s+[^-|:]{1,40}$")


@dataclass(frozen=True, slots=True)
class StoryParams:
    """How long a story stays open to repeats, how many are kept, how similar copies are."""

    window_ms: int = 3_600_000
    max_stories: int = 2_000
    threshold: float = 0.5


def normalised_words(text: str) -> list[str]:
    """The headline's words: lower case, punctuation and outlet tags dropped."""
    return _WORD.findall(_OUTLET.sub(" ", text).lower())


def story_key(text: str) -> str:
    """A stateless story id: a digest of the normalised headline (``s-`` and 16 hex digits).

    Every worker gives copies that normalise alike (outlet tags, case, punctuation) the same
    key without sharing state; reworded copies get different keys, and only the aggregator's
    :class:`StoryIndex`, which sees every partition, joins those."""
    words = normalised_words(text)
    basis = " ".join(words) if words else text
    return "s-" + hashlib.blake2b(basis.encode(), digest_size=8).hexdigest()


def shingles(text: str) -> set[str]:
    """Word 2-shingles of the normalised headline (single words for one-word headlines)."""
    words = normalised_words(text)
    if len(words) < 2:
        return set(words)
    return {f"{a} {b}" for a, b in pairwise(words)}


def signature(parts: set[str]) -> tuple[int, ...]:
    """MinHash signature of a shingle set (empty set: all zeros, never matched).

    One 64-byte blake2b digest per shingle gives its 16 independent 32-bit hash values; value
    ``i`` of the signature is the minimum of hash ``i`` over the shingles."""
    if not parts:
        return (0,) * SIGNATURE_SIZE
    rows = [_UNPACK(hashlib.blake2b(p.encode(), digest_size=_DIGEST_BYTES).digest()) for p in parts]
    return tuple(map(min, zip(*rows, strict=True)))


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity: the share of signature values that agree."""
    return sum(x == y for x, y in zip(a, b, strict=True)) / SIGNATURE_SIZE


@dataclass(frozen=True, slots=True)
class _Story:
    story_id: str
    first_ms: int
    signature: tuple[int, ...]


class StoryIndex:
    """Assigns each headline to a story. Not thread-safe: the aggregator owns it."""

    def __init__(self, params: StoryParams) -> None:
        self.params = params
        self._stories: OrderedDict[str, _Story] = OrderedDict()
        self._bands: dict[tuple[int, int, int], set[str]] = {}

    def __len__(self) -> int:
        return len(self._stories)

    def assign(self, item_id: str, text: str, event_ms: int) -> tuple[str, bool]:
        """``(story_id, is_repeat)`` for one headline; a new story is named after ``item_id``."""
        self._expire(event_ms)
        sig = signature(shingles(text))
        if any(sig):
            match = self._match(sig, event_ms)
            if match is not None:
                return match, True
        self._add(_Story(item_id, event_ms, sig))
        return item_id, False

    def _match(self, sig: tuple[int, ...], event_ms: int) -> str | None:
        candidates: set[str] = set()
        for key in _band_keys(sig):
            candidates |= self._bands.get(key, set())
        best: tuple[float, str] | None = None
        for story_id in candidates:
            story = self._stories[story_id]
            if abs(event_ms - story.first_ms) > self.params.window_ms:
                continue
            score = similarity(sig, story.signature)
            if score >= self.params.threshold and (best is None or score > best[0]):
                best = (score, story_id)
        return best[1] if best else None

    def _add(self, story: _Story) -> None:
        if story.story_id in self._stories:
            return
        self._stories[story.story_id] = story
        if any(story.signature):
            for key in _band_keys(story.signature):
                self._bands.setdefault(key, set()).add(story.story_id)
        while len(self._stories) > self.params.max_stories:
            self._drop_oldest()

    def _expire(self, now_ms: int) -> None:
        horizon = now_ms - self.params.window_ms
        while self._stories and next(iter(self._stories.values())).first_ms < horizon:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, story = self._stories.popitem(last=False)
        if not any(story.signature):
            return
        for key in _band_keys(story.signature):
            ids = self._bands.get(key)
            if ids is not None:
                ids.discard(story.story_id)
                if not ids:
                    del self._bands[key]

    def to_state(self) -> list[list[Any]]:
        return [[s.story_id, s.first_ms, list(s.signature)] for s in self._stories.values()]

    def load_state(self, state: list[list[Any]]) -> None:
        self._stories.clear()
        self._bands.clear()
        for story_id, first_ms, sig in state:
            self._add(_Story(str(story_id), int(first_ms), tuple(int(v) for v in sig)))


def _band_keys(sig: tuple[int, ...]) -> list[tuple[int, int, int]]:
    return [(band, sig[band * ROWS], sig[band * ROWS + 1]) for band in range(BANDS)]
