"""Text normalisation shared by training and serving, so both see the same inputs."""

from __future__ import annotations

import html
import re

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Unescape HTML entities, drop URLs, collapse whitespace. Case and cashtags are kept."""
    text = html.unescape(text)
    text = _URL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def dedup_key(text: str) -> str:
    """Key for near-duplicate detection (syndicated headlines, templated feeds)."""
    return normalise(text).lower()
