"""A replay producer: streams synthetic headlines into ``news.raw`` at a steady rate.

The schedule is pure (:func:`plan_burst`), the producer loop takes a stop event and a rate.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kafka import KafkaProducer

from monitor.demo.generator import NewsGenerator, SyntheticItem

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ReplayPlan:
    """Steady background feed, then one negative burst on ``burst_topic``."""

    rate_per_sec: float = 40.0
    burst_topic: str = "Energy | Oil"
    burst_after_sec: float = 25.0
    burst_items: int = 80
    burst_negative_share: float = 0.9
    malformed_every: int = 50  # one malformed message per this many (0: none)


@dataclass
class ReplayProducer:
    """Produces the plan's messages to ``topic`` until stopped; counts what it sent."""

    producer: KafkaProducer
    topic: str
    plan: ReplayPlan
    generator: NewsGenerator = field(default_factory=NewsGenerator)
    sent: int = 0
    malformed: int = 0
    burst_sent: bool = False

    def _send(self, item: SyntheticItem) -> None:
        message = item.message(datetime.now(UTC))
        self.producer.send(self.topic, key=item.id.encode(), value=json.dumps(message).encode())
        self.sent += 1

    def _send_malformed(self) -> None:
        bad = (b"{not json", b'{"headline": "no id here"}', b'{"id": "x", "headline": ""}')
        self.producer.send(self.topic, value=bad[self.malformed % len(bad)])
        self.malformed += 1

    def run(self, stop: threading.Event) -> None:
        started = time.monotonic()
        interval = 1.0 / self.plan.rate_per_sec
        try:
            self._loop(stop, started, interval)
        finally:
            self.producer.flush(timeout=10)
            self.producer.close(timeout=5)

    def _loop(self, stop: threading.Event, started: float, interval: float) -> None:
        while not stop.is_set():
            self._send(self.generator.item())
            if self.plan.malformed_every and self.sent % self.plan.malformed_every == 0:
                self._send_malformed()
            if not self.burst_sent and time.monotonic() - started >= self.plan.burst_after_sec:
                for item in self.generator.burst(
                    self.plan.burst_topic, self.plan.burst_items, self.plan.burst_negative_share
                ):
                    self._send(item)
                self.burst_sent = True
                logger.info(
                    "injected a negative burst of %d items on %r",
                    self.plan.burst_items,
                    self.plan.burst_topic,
                )
            stop.wait(interval)
