"""A bounded cache of recent predictions keyed by normalised text.

Syndicated headlines repeat word for word across sources; an identical normalised text gets the
same prediction without a forward pass. The key is :func:`monitor.classify.text.normalise` output
(case kept, so a cased model's inputs never collide). Least recently used entries go first.

Entries are held under a 128-bit BLAKE2b digest of the key, not the key: a text may be up to
``ingest.max_message_bytes`` long, so 10,000 keys could have held gigabytes; a digest bounds each
entry to its prediction and 16 bytes (a collision, at 2^-128 per pair, is not a practical risk).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from monitor.contract import Prediction


class PredictionCache:
    """At most ``max_items`` entries; ``max_items=0`` disables it. Not thread-safe."""

    def __init__(self, max_items: int) -> None:
        if max_items < 0:
            raise ValueError(f"max_items must be >= 0, got {max_items}")
        self._max_items = max_items
        self._entries: OrderedDict[bytes, Prediction] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Prediction | None:
        """The cached prediction (now most recently used), or None."""
        digest = _digest(key)
        found = self._entries.get(digest)
        if found is not None:
            self._entries.move_to_end(digest)
        return found

    def put(self, key: str, prediction: Prediction) -> None:
        """Store, evicting the least recently used entry past the bound."""
        if self._max_items == 0:
            return
        digest = _digest(key)
        self._entries[digest] = prediction
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max_items:
            self._entries.popitem(last=False)


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()
