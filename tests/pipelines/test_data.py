from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.data import (
    KEY,
    SENTIMENT_SPEC,
    dedup,
    grouped_split,
    leakage,
    load_table,
    map_labels,
    prepare,
    topic_spec,
)
from pipelines.errors import DataError
from pipelines.labels import TWITTER_TOPICS


def test_sentiment_synonyms_and_twitter_ids() -> None:
    values = ["Bearish", "bullish", "NEUTRAL", "negative", "positive", 0, 1, 2, "2", 1.0]
    ids = map_labels(values, SENTIMENT_SPEC, "f.csv")
    names = [SENTIMENT_SPEC.names[i] for i in ids]
    assert names == [
        "negative",
        "positive",
        "neutral",
        "negative",
        "positive",
        "negative",
        "positive",
        "neutral",
        "neutral",
        "positive",
    ]


def test_topic_labels_by_name_or_id() -> None:
    spec = topic_spec()
    ids = map_labels(["Analyst Update", 19, "m&a | investments"], spec, "t.csv")
    assert [spec.names[i] for i in ids] == ["Analyst Update", "Stock Movement", "M&A | Investments"]
    assert len(TWITTER_TOPICS) == 20


def test_unknown_label_names_file_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("tweet,sent\nup we go,bullish\ndown,bearish\nmeh,sideways\n", encoding="utf-8")
    frame = load_table(path, "tweet", "sent")
    with pytest.raises(DataError) as info:
        map_labels(frame["label"].tolist(), SENTIMENT_SPEC, str(path), "sent")
    err = info.value
    assert (err.file, err.row, err.column) == (str(path), 3, "sent")
    assert "sideways" in str(err) and "row 3" in str(err) and str(path) in str(err)


def test_label_id_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"row 2, column 'label': label id 3"):
        map_labels([0, 3], SENTIMENT_SPEC, "x.csv")


def test_empty_text_names_row(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text('text,label\nfine,0\n"",1\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_table(path)
    assert (info.value.row, info.value.column) == (2, "text")


def test_missing_column_and_ragged_csv(tmp_path: Path) -> None:
    path = tmp_path / "cols.csv"
    path.write_text("body,label\nx,0\n", encoding="utf-8")
    with pytest.raises(DataError, match="column 'text'"):
        load_table(path)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("text,label\na,0\nb,1\nc,1,extra\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_table(ragged)
    assert info.value.file == str(ragged) and info.value.row == 3


def test_jsonl_and_parquet_suffixes(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "bullish"}\n{"text": "b", "label": 0}\n', "utf-8")
    frame = load_table(path)
    assert frame["text"].tolist() == ["a", "b"]
    with pytest.raises(DataError, match="file not found"):
        load_table(tmp_path / "none.parquet")


def test_prepare_cleans_like_serving() -> None:
    raw = pd.DataFrame({"text": ["AT&amp;T up https://t.co/x  now", "   "], "label": [1, 2]})
    out = prepare(raw, SENTIMENT_SPEC, "f")
    assert out["text"].tolist() == ["AT&T up now"]
    assert out[KEY].tolist() == ["at&t up now"]


def test_dedup_merges_normalised_copies_with_majority_label() -> None:
    raw = pd.DataFrame(
        {
            "text": ["Stock UP", "stock up", "stock up https://t.co/a", "other"],
            "label": [2, 1, 1, 0],
        }
    )
    out, stats = dedup(prepare(raw, SENTIMENT_SPEC, "f"))
    assert len(out) == 2
    assert out.set_index(KEY).loc["stock up", "label"] == SENTIMENT_SPEC.names.index("positive")
    assert stats == {"exact": 1, "normalised": 1, "conflicting": 1}


def test_grouped_split_is_stratified_and_keeps_groups_together() -> None:
    rng = np.random.default_rng(0)
    texts = [f"text {i % 300}" for i in range(600)]  # every key appears twice
    labels = [int(rng.integers(0, 3)) if i < 300 else -1 for i in range(600)]
    labels = [labels[i % 300] for i in range(600)]
    frame = pd.DataFrame({"text": texts, "label": labels, KEY: texts})
    train, holdout = grouped_split(frame, 0.2, seed=1)
    assert not set(train[KEY]) & set(holdout[KEY])
    assert len(train) + len(holdout) == 600
    for label in range(3):
        share = (holdout["label"] == label).sum() / (frame["label"] == label).sum()
        assert share == pytest.approx(0.2, abs=0.02)
    assert leakage(train, holdout) == 0
    again, _ = grouped_split(frame, 0.2, seed=1)
    assert again.equals(train)
