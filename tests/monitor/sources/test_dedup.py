"""The SQLite feed store: positions, seen keys, restarts, pruning by age."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from monitor.sources.dedup import FeedPosition, FeedStore
from monitor.sources.feeds import FeedEntry
from monitor.sources.http import Validators
from monitor.sources.items import SourceItem, to_item

DAY_MS = 86_400_000
ENTRY = FeedEntry(
    guid="g-1",
    link="https://x.example.com/1",
    title="Bank raises dividend",
    summary="",
    published_at=datetime(2026, 11, 30, tzinfo=UTC),
    time_estimated=False,
    tags=(),
)


def item(**changes: object) -> SourceItem:
    return to_item("wire", replace(ENTRY, **changes), max_body_chars=500)  # type: ignore[arg-type]


def test_seen_survives_a_restart(tmp_path: Path) -> None:
    store = FeedStore(tmp_path / "s.sqlite", retention_ms=DAY_MS)
    first = item()
    assert store.split([first]).new == (first,)
    store.commit(
        "wire", "http://a", FeedPosition("http://b", Validators('"e"', "lm")), first.keys, 1
    )
    store.close()
    again = FeedStore(tmp_path / "s.sqlite", retention_ms=DAY_MS)
    assert again.split([first]).duplicates == (first,)
    assert again.position("wire", "http://a") == FeedPosition("http://b", Validators('"e"', "lm"))


def test_changed_guid_same_link_is_not_new(tmp_path: Path) -> None:
    store = FeedStore(tmp_path / "s.sqlite", retention_ms=DAY_MS)
    store.commit("wire", "u", FeedPosition("u"), item().keys, 1)
    split = store.split(
        [item(guid="g-1-rev2"), item(guid="g-2", link="https://x.example.com/2", title="Other")]
    )
    assert [i.message["headline"] for i in split.new] == ["Other"]
    assert len(split.duplicates) == 1


def test_title_and_date_identify_items_without_guid_or_link(tmp_path: Path) -> None:
    store = FeedStore(tmp_path / "s.sqlite", retention_ms=DAY_MS)
    store.commit("wire", "u", FeedPosition("u"), item().keys, 1)
    bare = item(guid="", link="", title="Bank raises  dividend!")
    other_day = item(guid="", link="", published_at=datetime(2026, 12, 5, tzinfo=UTC))
    own_link = item(guid="g-9", link="https://x.example.com/9")  # same title: a distinct story
    split = store.split([bare, other_day, own_link])
    assert split.duplicates == (bare,)
    assert split.new == (other_day, own_link)


def test_repeats_inside_one_poll_count_once(tmp_path: Path) -> None:
    store = FeedStore(tmp_path / "s.sqlite", retention_ms=DAY_MS)
    split = store.split([item(), item()])
    assert (len(split.new), len(split.duplicates)) == (1, 1)


def test_keys_older_than_retention_are_pruned(tmp_path: Path) -> None:
    store = FeedStore(tmp_path / "s.sqlite", retention_ms=DAY_MS)
    store.commit("wire", "u", FeedPosition("u"), item().keys, 0)
    assert store.seen_count() == 3
    store.commit(
        "wire", "u", FeedPosition("u"), item(guid="n", link="", title="New").keys, DAY_MS + 1
    )
    assert store.seen_count() == 2  # the old item's three keys are gone


def test_a_changed_config_url_starts_from_it(tmp_path: Path) -> None:
    store = FeedStore(tmp_path / "s.sqlite", retention_ms=DAY_MS)
    store.commit("wire", "http://old", FeedPosition("http://moved", Validators("e")), (), 1)
    assert store.position("wire", "http://new") == FeedPosition("http://new")
