"""News files with entity-level sentiment: loading errors, spans, training, export and serving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.classify.engine import TorchClassifier
from monitor.classify.entities import EntityQuery
from monitor.classify.model import ENTITY, load_model
from pipelines.entities import (
    MIXED_ID,
    encode_news,
    load_news,
    predict_entities,
    span_labels,
    split_news,
)
from pipelines.errors import DataError
from pipelines.evaluate_entity import evaluate_entities, format_entity_report
from tests.pipelines.conftest import toy_news, write_news


def test_bad_entities_json_names_file_row_and_column(tmp_path: Path) -> None:
    frame = toy_news(6)
    frame.loc[3, "entities"] = '{"Acme3": "positive",'
    path = write_news(tmp_path / "news.csv", frame)
    with pytest.raises(DataError) as caught:
        load_news(path)
    assert (caught.value.file, caught.value.row, caught.value.column) == (str(path), 4, "entities")
    assert "news.csv, row 4, column 'entities'" in str(caught.value)


def test_unknown_entity_sentiment_is_named(tmp_path: Path) -> None:
    frame = toy_news(4)
    frame.loc[1, "entities"] = json.dumps({"Acme1": "bullish-ish"})
    with pytest.raises(DataError, match=r"row 2.*bullish-ish"):
        load_news(write_news(tmp_path / "news.csv", frame))


def test_spans_cover_the_mention_and_mixed_rows_have_no_headline_label(
    tiny_base: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    frame = load_news(write_news(tmp_path / "news.csv", toy_news(12)))
    encoded = encode_news(tokenizer, frame, ["sentiment", "topic"], 32)
    for ids, spans, entities in zip(
        encoded.data.input_ids, encoded.data.spans or (), frame["entities"], strict=True
    ):
        names = [
            str(tokenizer.decode(list(ids[a:b]))).replace(" ", "").lower() for a, b, _ in spans
        ]
        assert names == [name.lower() for name, _ in entities]
        assert [y for _, _, y in spans] == [y for _, y in entities]
    mixed = frame["label"].to_numpy() == MIXED_ID
    assert mixed.any()
    assert (encoded.data.labels["sentiment"][mixed] == -100).all()
    assert (encoded.data.labels["topic"] == -100).all()


def test_an_entity_the_text_lacks_is_flagged_not_spanned(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    frame = pd.DataFrame(
        {
            "text": ["Acme soars"],
            "label": [2],
            "key": ["acme soars"],
            "entities": [[("Acme", 2), ("Nvidia", 0)]],
        }
    )
    encoded = encode_news(tokenizer, frame, ["sentiment"], 32)
    assert encoded.found == ((True, False),)
    assert len(encoded.data.spans[0]) == 1  # type: ignore[index]


def test_split_keeps_mixed_in_both_sides(tmp_path: Path) -> None:
    frame = load_news(write_news(tmp_path / "news.csv", toy_news(90)))
    news = split_news(frame, 0.2, seed=1)
    assert (news.holdout["label"] == MIXED_ID).any() and (news.train["label"] == MIXED_ID).any()
    assert not set(news.train["key"]) & set(news.holdout["key"])


@pytest.mark.slow
def test_export_load_predict_gives_identical_entity_outputs(
    news_model: Path, tmp_path: Path
) -> None:
    model, tokenizer = load_model(news_model)
    assert ENTITY in model.heads
    frame = load_news(write_news(tmp_path / "test.csv", toy_news(30, seed=5)))
    encoded = encode_news(tokenizer, frame, ["sentiment"], model.meta.max_length_tokens)
    import torch

    in_memory = predict_entities(
        model, encoded.data, batch_size=8, pad_id=0, device=torch.device("cpu")
    )
    served = TorchClassifier.from_dir(news_model, device="cpu", quantize="none").predict(
        frame["text"].tolist(),
        [[EntityQuery(name) for name, _ in entities] for entities in frame["entities"]],
    )
    flat = [e for p in served for e in p.entities]
    assert len(flat) == len(in_memory) == len(span_labels(encoded.data))
    for entity, probs in zip(flat, in_memory, strict=True):
        assert entity.found
        np.testing.assert_allclose(list(entity.sentiment_probs.values()), probs, atol=1e-5)


@pytest.mark.slow
def test_evaluate_entity_reports_mixed_baseline_and_not_found(
    news_model: Path, tmp_path: Path
) -> None:
    frame = toy_news(30, seed=7)
    frame.loc[0, "entities"] = json.dumps({"Acme0": "positive", "Zeta": "negative"})
    path = write_news(tmp_path / "test.csv", frame)
    result = evaluate_entities(news_model, path)
    n_entities = sum(len(json.loads(e)) for e in frame["entities"])
    assert result["not_found"]["count"] == 1
    assert result["entity"]["n"] == n_entities - 1
    assert result["entity_mixed"]["n"] + result["entity_single"]["n"] == n_entities - 1
    assert result["baseline"]["n"] == result["entity"]["n"]
    assert result["headline"]["n"] == int((frame["label"] != "mixed").sum())
    assert Path(result["files"]["json"]).is_file()
    assert "mixed headlines" in format_entity_report(result)


@pytest.mark.parametrize(
    "file", ["news-multitask.yaml", "news-multitask-mpnet.yaml", "news-multitask-distilled.yaml"]
)
def test_shipped_news_configs(file: str, shared_data: Path) -> None:
    from pipelines.config import load_config

    repo = Path(__file__).resolve().parents[2]
    config = load_config(repo / "configs" / file)
    assert not config.self_distill
    if file.endswith("distilled.yaml"):  # the export of the MPNet recipe's documented command
        assert config.teacher_model is not None
        where = config.path(config.teacher_model).resolve()
        assert where == (repo / "runs" / "news-multitask-mpnet").resolve()
    if file.endswith("mpnet.yaml"):  # where scripts/fetch_teacher_model.py puts it
        where = config.path(config.base_model).resolve()
        assert where == (repo.parent / "models" / "all-mpnet-base-v2").resolve()
    for name in (config.sentiment_train, config.topic_train, config.news_train, config.news_test):
        assert name and config.path(name).is_file()
