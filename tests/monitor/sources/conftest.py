from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.monitor.sources.feed_server import FeedServer

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()
