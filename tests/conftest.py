"""Shared fixtures: a real Kafka-protocol broker, fresh metrics registries, shared data paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401  (imported before any test: see below)
import pytest

from monitor.broker import EmbeddedBroker
from monitor.metrics import Metrics, build_metrics

# CPython 3.11.7 can fail to compile a module after a test hit a RecursionError ("AST constructor
# recursion depth mismatch", fixed in 3.11.8); the hypothesis plugin imports its package lazily at
# the terminal summary, so it is imported here, at start-up, while no test has run yet.

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One tansu broker for the session, on a free loopback port (in-memory storage)."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture
def metrics() -> Metrics:
    """A fresh registry per test."""
    return build_metrics()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip with a clear message where it is absent."""
    if not (SHARED_DATA / "twitter-financial-news").is_dir():
        pytest.skip(f"../shared/data not found at {SHARED_DATA}: labelled data tests skipped")
    return SHARED_DATA


TINY_TOPICS = ("Earnings", "M&A | Investments", "Macro", "Legal | Regulation")


def tiny_bert(seed: int = 0) -> tuple[Any, Any]:
    """A randomly initialised 2-layer BERT (hidden 32) and the offline MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from monitor.classify.base import resolve_base_model

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    return BertModel(config), tokenizer


def build_tiny_model_dir(out_dir: Path, seed: int = 0, *, entity: bool = False) -> Path:
    """The tiny BERT with both heads (and the entity head when ``entity``), in the export
    format (no download)."""
    from monitor.classify.model import (
        ModelMeta,
        MultiTaskModel,
        default_labels,
        entity_labels,
        save_model,
    )

    encoder, tokenizer = tiny_bert(seed)
    labels = entity_labels(TINY_TOPICS) if entity else default_labels(TINY_TOPICS)
    meta = ModelMeta(labels=labels, max_length_tokens=64, version="tiny-test")
    model = MultiTaskModel(encoder, meta)
    return save_model(model.eval(), tokenizer, out_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))
