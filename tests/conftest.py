"""Shared fixtures: a real Kafka-protocol broker, fresh metrics registries, shared data paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker
from monitor.metrics import Metrics, build_metrics

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
