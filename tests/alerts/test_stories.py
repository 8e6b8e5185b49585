from __future__ import annotations

import json

from alerts.stories import (
    StoryIndex,
    StoryParams,
    shingles,
    signature,
    similarity,
    story_key,
)

WIRE = "Acme Bank halts withdrawals after regulator probe"


def test_copies_from_many_outlets_are_one_story() -> None:
    index = StoryIndex(StoryParams())
    first = index.assign("a", f"{WIRE} - Reuters", 0)
    copies = [
        index.assign("b", WIRE, 1_000),
        index.assign("c", f"(Bloomberg) {WIRE.upper()}", 2_000),
        index.assign("d", f"{WIRE}, shares slide", 3_000),
    ]
    assert first == ("a", False)
    assert copies == [("a", True)] * 3
    assert index.assign("e", "Fed holds rates steady as inflation cools", 4_000) == ("e", False)
    assert len(index) == 2


def test_a_story_is_forgotten_after_its_window_and_the_index_is_bounded() -> None:
    index = StoryIndex(StoryParams(window_ms=60_000, max_stories=3))
    index.assign("a", WIRE, 0)
    assert index.assign("b", WIRE, 61_000) == ("b", False)  # too late: a new story
    for i in range(10):
        index.assign(f"x{i}", f"unrelated headline number {i} about widgets {i * 7}", 62_000 + i)
    assert len(index) == 3


def test_similarity_estimates_jaccard() -> None:
    same = signature(shingles(WIRE))
    other = signature(shingles("Oil prices jump as OPEC cuts output again"))
    assert similarity(same, signature(shingles(f"{WIRE} - CNBC"))) >= 0.5
    assert similarity(same, other) < 0.3


def test_the_index_round_trips_through_json() -> None:
    index = StoryIndex(StoryParams())
    index.assign("a", WIRE, 0)
    index.assign("e", "Fed holds rates steady", 10)
    again = StoryIndex(StoryParams())
    again.load_state(json.loads(json.dumps(index.to_state())))
    assert again.assign("z", f"{WIRE} - AP", 20) == ("a", True)
    assert again.to_state()[:2] == index.to_state()[:2]


def test_story_key_is_stateless_and_ignores_outlet_tags_case_and_punctuation() -> None:
    key = story_key(WIRE)
    assert key.startswith("s-") and len(key) == 18
    assert story_key(f"(Bloomberg) {WIRE.upper()}!") == key
    assert story_key(f"{WIRE} - Reuters") == key
    assert story_key("Fed holds rates steady as inflation cools") != key
    assert story_key("!!!") != story_key("???")  # no words: the raw text decides
