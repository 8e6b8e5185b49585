"""Producing source items to ``news.raw`` and waiting for the broker's acknowledgement.

Blocking. :meth:`AckProducer.produce` returns only once the broker acknowledged every message
(``kafka.producer_acks``), or raises :class:`ProduceError`: callers commit a feed position, answer
202 or move a dropped file only after it returned. Items in flight are counted against a bound
that the push endpoint reads to answer 429 instead of queueing without limit.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from monitor.ingest.health import BrokerWatch
from monitor.sources.errors import ProduceError

logger = logging.getLogger(__name__)


class MessageSink(Protocol):
    """Where source items go; ``produce`` returns only once they are durable."""

    def produce(self, messages: Sequence[dict[str, Any]]) -> None: ...


class MemorySink:
    """In-memory sink for tests and benchmarks; ``fail_next`` makes the next call raise."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail_next = False

    def produce(self, messages: Sequence[dict[str, Any]]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ProduceError("memory sink told to fail")
        self.messages.extend(messages)


class AckProducer:
    """One KafkaProducer shared by every source of the process (thread-safe)."""

    def __init__(
        self,
        producer: KafkaProducer,
        topic: str,
        *,
        timeout_sec: float,
        max_in_flight_items: int,
        broker: BrokerWatch | None = None,
    ) -> None:
        """``broker``: told of every acknowledged produce and every retriable failure."""
        self.producer = producer
        self.broker = broker
        self.topic = topic
        self.timeout_sec = timeout_sec
        self.max_in_flight_items = max_in_flight_items
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def try_reserve(self, count: int) -> bool:
        """Reserve room for ``count`` items; False (nothing reserved) while over the bound."""
        with self._lock:
            if self._in_flight and self._in_flight + count > self.max_in_flight_items:
                return False
            self._in_flight += count
            return True

    def release(self, count: int) -> None:
        with self._lock:
            self._in_flight -= count

    def produce(self, messages: Sequence[dict[str, Any]]) -> None:
        """Send ``messages`` (keyed by id); wait for every acknowledgement. Raises ProduceError."""
        if not messages:
            return
        try:
            futures = [
                self.producer.send(
                    self.topic, key=str(m["id"]).encode(), value=json.dumps(m).encode()
                )
                for m in messages
            ]
            self.producer.flush(timeout=self.timeout_sec)
            for future in futures:
                future.get(timeout=self.timeout_sec)
        except KafkaError as exc:
            if self.broker is not None and exc.retriable:  # not a refused record: the broker
                self.broker.failed(exc)
            raise ProduceError(f"{type(exc).__name__}: {exc}") from exc
        if self.broker is not None:
            self.broker.ok()

    def close(self, timeout_sec: float = 5.0) -> None:
        """Flush and close; items still unacknowledged are given up (their positions stay old)."""
        try:
            self.producer.flush(timeout=timeout_sec)
            self.producer.close(timeout=timeout_sec)
        except KafkaError as exc:
            logger.warning("source producer did not flush on close: %s", exc)
