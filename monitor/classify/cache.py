"""A bounded cache of recent predictions keyed by normalised text.

Syndicated headlines repeat word for word across sources; an identical normalised text gets the
same prediction without a forward pass. The key is :func:`monitor.classify.text.normalise` output
(case kept, so a cased model's inputs never collide). Least recently used entries go first.
"""

from __future__ import annotations

from collections import OrderedDict

from monitor.contract import Prediction


class PredictionCache:
    """At most ``max_items`` entries; ``max_items=0`` disables it. Not thread-safe."""

    def __init__(self, max_items: int) -> None:
        if max_items < 0:
            raise ValueError(f"max_items must be >= 0, got {max_items}")
        self._max_items = max_items
        self._entries: OrderedDict[str, Prediction] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Prediction | None:
        """The cached prediction (now most recently used), or None."""
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: str, prediction: Prediction) -> None:
        """Store, evicting the least recently used entry past the bound."""
        if self._max_items == 0:
            return
        self._entries[key] = prediction
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_items:
            self._entries.popitem(last=False)
