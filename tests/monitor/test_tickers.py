"""Cashtags, exchange tags and the name -> ticker dictionary with aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.tickers import (
    TickerDictionary,
    TickerDictionaryError,
    extract_mentions,
    extract_tickers,
    merge_tickers,
)

NAMES = TickerDictionary.from_mapping({"AAPL": ["Apple", "Apple Inc."], "TSLA": ["Tesla"]})


def test_cashtags_and_exchange_tags() -> None:
    text = "$tsla up, Tilray (NASDAQ:TLRY) and NYSE: GE fall; $BRK.B flat; costs $5"
    assert extract_tickers(text) == ("TSLA", "TLRY", "GE", "BRK.B")


def test_dictionary_aliases_longest_first_on_word_boundaries() -> None:
    mentions = extract_mentions("Apple Inc. beats as Tesla slumps; Pineapple, Teslas", NAMES)
    assert [(m.name, m.ticker) for m in mentions] == [("Apple Inc.", "AAPL"), ("Tesla", "TSLA")]
    assert mentions[0].start == 0 and mentions[0].end == len("Apple Inc.")


def test_a_span_is_not_counted_twice() -> None:
    names = TickerDictionary.from_mapping({"TLRY": ["TLRY", "Tilray"]})
    mentions = extract_mentions("Tilray (NASDAQ:TLRY) jumps", names)
    assert [m.ticker for m in mentions] == ["TLRY", "TLRY"]
    assert [m.name for m in mentions] == ["Tilray", "TLRY"]


def test_merge_keeps_input_order_first() -> None:
    assert merge_tickers(["$msft", "aapl"], ["AAPL", "TSLA"]) == ("MSFT", "AAPL", "TSLA")


def test_load_yaml_and_bad_file(tmp_path: Path) -> None:
    good = tmp_path / "names.yaml"
    good.write_text("AAPL: [Apple, iPhone maker]\nGE: General Electric\n")
    loaded = TickerDictionary.load(good)
    assert loaded.ticker_of("iphone MAKER") == "AAPL"
    assert loaded.display["GE"] == "General Electric"
    bad = tmp_path / "bad.yaml"
    bad.write_text("AAPL: {name: Apple}\n")
    with pytest.raises(TickerDictionaryError, match="AAPL"):
        TickerDictionary.load(bad)
