"""Test headlines that are each their own story.

The aggregator's story index (alerts/stories.py) counts near-duplicate headlines once, so a
test stream of ``f"{topic} headline {n}"`` is one story, not ``n``. ``own_story`` weaves three
made-up words, drawn from the key, into a headline: consonant-vowel syllables, so no keyword of
the test classifier (tests/keyword_classifier.py) can appear in them.
"""

from __future__ import annotations

import hashlib

SYLLABLES = tuple(c + v for c in "bdgkmnprstvz" for v in "aeiou")


def made_up_words(key: object, count: int = 3) -> list[str]:
    """``count`` words of three syllables each, fixed by ``key``."""
    digest = hashlib.blake2b(str(key).encode(), digest_size=3 * count).digest()
    return [
        "".join(SYLLABLES[b % len(SYLLABLES)] for b in digest[3 * k : 3 * k + 3])
        for k in range(count)
    ]


def own_story(headline: str, key: object) -> str:
    """``headline`` with the made-up words of ``key`` after its 1st, 2nd and 3rd words."""
    words = headline.split()
    for slot, word in zip((1, 3, 5), made_up_words(key), strict=True):
        words.insert(min(slot, len(words)), word)
    return " ".join(words)
