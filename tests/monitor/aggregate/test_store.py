from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.aggregate.store import MemoryStateStore, SqliteStateStore, StateStore


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], StateStore]:
    """The same contract for both stores; ``make_store()`` twice = a restart."""
    memory = MemoryStateStore()

    def make() -> StateStore:
        return memory if request.param == "memory" else SqliteStateStore(tmp_path / "s.sqlite")

    return make


def test_empty_store_loads_nothing(make_store: Callable[[], StateStore]) -> None:
    assert make_store().load() == (None, [])


def test_save_replaces_snapshot_and_keeps_newest_ids(
    make_store: Callable[[], StateStore],
) -> None:
    store = make_store()
    store.save({"a": 1}, ["x1", "x2", "x3"], keep_ids=4)
    store.save({"a": 2, "nested": [1.5, None]}, ["x4", "x5"], keep_ids=4)
    store.close()
    snapshot, ids = make_store().load()
    assert snapshot == {"a": 2, "nested": [1.5, None]}
    assert ids == ["x2", "x3", "x4", "x5"]
