"""The aggregator's :class:`~monitor.aggregate.store.StateStore` on one partition's key-value state.

A snapshot is split into changelog keys so that a checkpoint writes only what changed and no record
grows with the number of keys: ``meta`` (event time, watermark, rule states, story index), one
``track/<kind>/<key>`` per window track (a tombstone when the track is dropped), and the counted ids
in a ring of ``ids/<slot>`` chunks of at most :data:`ID_CHUNK` ids each. ``save`` returns once the
state map holds the new values; they are durable once the worker has produced them.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from typing import Any

from monitor.aggregate.changelog import PartitionState

ID_CHUNK = 1_000
META_KEY = "meta"
TRACK_PREFIX = "track/"
ID_PREFIX = "ids/"


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class PartitionStore:
    """A :class:`~monitor.aggregate.store.StateStore` writing to a :class:`PartitionState`."""

    def __init__(self, state: PartitionState) -> None:
        self.state = state
        self._chunks: deque[tuple[int, list[str]]] = deque()

    def load(self) -> tuple[dict[str, Any] | None, list[str]]:
        chunks = []
        for key in self.state.keys(ID_PREFIX):
            chunk = json.loads(self.state.values[key])
            chunks.append((int(chunk["n"]), [str(i) for i in chunk["ids"]]))
        self._chunks = deque(sorted(chunks))
        ids = [i for _, chunk in self._chunks for i in chunk]
        meta = self.state.get(META_KEY)
        if meta is None:
            return None, ids
        snapshot = json.loads(meta)
        tracks = []
        for key in self.state.keys(TRACK_PREFIX):
            _, kind, name = key.split("/", 2)
            tracks.append([kind, name, json.loads(self.state.values[key])])
        snapshot["tracks"] = tracks
        return snapshot, ids

    def save(self, snapshot: dict[str, Any], new_ids: Sequence[str], keep_ids: int) -> None:
        meta = {k: v for k, v in snapshot.items() if k != "tracks"}
        self.state.put(META_KEY, dumps(meta))
        wanted = {f"{TRACK_PREFIX}{kind}/{key}": state for kind, key, state in snapshot["tracks"]}
        for key in self.state.keys(TRACK_PREFIX):
            if key not in wanted:
                self.state.put(key, None)
        for key, state in wanted.items():
            self.state.put(key, dumps(state))
        if new_ids:
            self._save_ids(new_ids, keep_ids)

    def _save_ids(self, new_ids: Sequence[str], keep_ids: int) -> None:
        slots = -(-keep_ids // ID_CHUNK) + 1
        touched: set[int] = set()
        for item_id in new_ids:
            if not self._chunks or len(self._chunks[-1][1]) >= ID_CHUNK:
                number = self._chunks[-1][0] + 1 if self._chunks else 0
                self._chunks.append((number, []))
                while len(self._chunks) > slots:
                    self._chunks.popleft()
            self._chunks[-1][1].append(item_id)
            touched.add(self._chunks[-1][0])
        for number, chunk in self._chunks:
            if number in touched:
                self.state.put(f"{ID_PREFIX}{number % slots}", dumps({"n": number, "ids": chunk}))

    def close(self) -> None:
        return None
