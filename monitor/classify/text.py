"""Text normalisation shared by training and serving, so both see the same inputs.

:func:`make_safe` is applied to every string of an input item at decode time: JSON ``\\u``
escapes can produce lone UTF-16 surrogates, which no tokenizer and no UTF-8 encoder accepts.
"""

from __future__ import annotations

import html
import re

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
# Lone surrogates: the only code points a Python str holds that UTF-8 cannot encode.
_UNENCODABLE = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHAR = "\ufffd"


def normalise(text: str) -> str:
    """Unescape HTML entities, drop URLs, collapse whitespace. Case and cashtags are kept."""
    text = html.unescape(text)
    text = _URL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def make_safe(text: str) -> tuple[str, int]:
    """``text`` with every unencodable code point replaced by U+FFFD, and how many were replaced.

    Afterwards ``text.encode("utf-8")`` cannot fail and the tokenizer accepts the text.
    """
    safe, count = _UNENCODABLE.subn(REPLACEMENT_CHAR, text)
    return safe, count


def dedup_key(text: str) -> str:
    """Key for near-duplicate detection (syndicated headlines, templated feeds)."""
    return normalise(text).lower()
