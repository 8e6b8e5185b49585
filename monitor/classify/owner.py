"""The one thread that owns the model and its device.

Callers :meth:`ModelOwner.submit` jobs (never blocks: False means the bounded inbox is full, the
backpressure signal) and collect finished ones with :meth:`ModelOwner.results`. The owner moves
jobs into a :class:`MicroBatcher`, runs each closed batch through the classifier, and hands back
``(job, Prediction | Exception, model_version)`` triples; a batch that fails is bisected to
isolate its bad items (:mod:`monitor.classify.isolate`), so one bad item costs only itself. When the
model itself is gone the thread ends and :attr:`ModelOwner.error` says why. While the model runs a
batch, the caller's thread keeps decoding the next one.

This thread is the only one that touches the tokenizer (inside the classifier's ``predict``): the
caller sizes jobs with :func:`estimate_tokens`, which needs none.

:meth:`ModelOwner.swap` replaces the classifier between two batches (model hot reload): a batch runs
wholly on one model, and each result names the version that scored it.

Jobs held here are not classified yet: their offsets must not be committed.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from monitor.classify.batcher import BatchPolicy, MicroBatcher
from monitor.classify.entities import EntityQuery
from monitor.classify.isolate import predict_isolating
from monitor.classify.protocol import Classifier
from monitor.contract import Prediction
from monitor.metrics import Metrics

logger = logging.getLogger(__name__)

J = TypeVar("J")
IDLE_WAIT_SEC = 0.05
_PIECE = re.compile(r"\w+|[^\w\s]")


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def estimate_tokens(texts: Sequence[str]) -> list[int]:
    """A tokenizer-free length estimate per text, for the batcher's token budget.

    Words plus punctuation marks, plus two for the special tokens: WordPiece splits each of those
    into at least one token. The engine tokenizes on the model thread and packs its forward
    batches by the exact lengths, so the estimate only decides how much work one call gets.
    """
    return [len(_PIECE.findall(t)) + 2 for t in texts]


@dataclass(frozen=True, slots=True)
class Job(Generic[J]):
    """One text to classify and whatever the caller needs back with it."""

    text: str
    n_tokens: int
    context: J
    entities: tuple[EntityQuery, ...] = ()


class Result(NamedTuple, Generic[J]):
    """One finished job: its prediction (or the exception it raised) and the model version."""

    job: Job[J]
    prediction: Prediction | Exception
    model_version: str


@dataclass
class ModelOwner(Generic[J]):
    """Runs the classifier on its own thread. ``start`` / ``stop``; thread-safe submit/results."""

    classifier: Classifier
    policy: BatchPolicy
    metrics: Metrics | None = None
    clock_ms: Callable[[], int] = monotonic_ms
    # Called on every pass of the model loop (idle or not): the liveness probe's heartbeat.
    beat: Callable[[], None] | None = None
    _inbox: queue.Queue[tuple[Job[J], int]] = field(init=False)
    _outbox: queue.Queue[Result[J]] = field(init=False, default_factory=queue.Queue)
    # Set after each batch's results are queued: wakes a caller waiting in wait_results.
    _finished: threading.Event = field(init=False, default_factory=threading.Event)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _thread: threading.Thread | None = field(init=False, default=None)
    _busy: int = field(init=False, default=0)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    error: BaseException | None = field(init=False, default=None)
    _next: tuple[Classifier, Callable[[], None]] | None = field(init=False, default=None)
    _abandon: threading.Event = field(init=False, default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._inbox = queue.Queue(maxsize=self.policy.max_queue_items)

    def submit(self, job: Job[J]) -> bool:
        """Queue a job; False when the inbox is full. Never blocks."""
        try:
            self._inbox.put_nowait((job, self.clock_ms()))
        except queue.Full:
            return False
        with self._lock:
            self._busy += 1
        return True

    def results(self) -> list[Result[J]]:
        """Every finished job so far (possibly none). Never blocks."""
        out: list[Result[J]] = []
        while True:
            try:
                out.append(self._outbox.get_nowait())
            except queue.Empty:
                return out

    def wait_results(self, timeout_sec: float) -> bool:
        """Block until results are ready to collect or ``timeout_sec`` passed; True when ready.

        For a caller with nothing else to do while the model works: waiting here costs nothing,
        where polling the broker every few milliseconds cost more CPU than the items did.
        """
        self._finished.clear()
        if not self._outbox.empty():
            return True
        return self._finished.wait(timeout_sec)

    @property
    def pending(self) -> int:
        """Jobs submitted whose results have not been handed back yet."""
        with self._lock:
            return self._busy

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def swap(self, classifier: Classifier, on_swapped: Callable[[], None] = lambda: None) -> None:
        """Serve ``classifier`` from the next batch on; the batch running now ends on the old one.

        Never blocks; ``on_swapped`` is called on the model thread right after the switch. A second
        call before the switch replaces the first.
        """
        with self._lock:
            self._next = (classifier, on_swapped)

    def _take_swap(self) -> None:
        with self._lock:
            pending, self._next = self._next, None
        if pending is not None:
            old, self.classifier = self.classifier.version, pending[0]
            logger.info("model swapped between batches: %s -> %s", old, self.classifier.version)
            pending[1]()

    def abandon_queued(self) -> None:
        """Drop every job not yet in the model (graceful drain): only the batch running now
        finishes. Dropped jobs never come back from :meth:`results`; their offsets stay
        uncommitted, so they are redelivered after the restart. Never blocks."""
        self._abandon.set()

    def _drop_queued(
        self, batcher: MicroBatcher[tuple[Job[J], int]]
    ) -> MicroBatcher[tuple[Job[J], int]]:
        self._abandon.clear()
        dropped = batcher.depth
        while True:
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                break
            dropped += 1
        with self._lock:
            self._busy -= dropped
        logger.info("drain: %d queued items left for redelivery", dropped)
        return MicroBatcher(self.policy, self.clock_ms)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="finmon-model", daemon=True)
        self._thread.start()

    def stop(self, timeout_sec: float = 30.0) -> None:
        """Finish every queued job, then end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_sec)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:
            # The Kafka thread sees the thread gone and raises this error (the role stops).
            self.error = exc
            logger.error("model thread stopped: %s", exc)

    def _loop(self) -> None:
        batcher: MicroBatcher[tuple[Job[J], int]] = MicroBatcher(self.policy, self.clock_ms)
        while True:
            if self.beat is not None:
                self.beat()
            self._take_swap()
            if self._abandon.is_set():
                batcher = self._drop_queued(batcher)
            stopping = self._stop.is_set()
            self._fill(batcher, self._wait_sec(batcher, stopping))
            batch = batcher.poll(flush=stopping)
            if self.metrics is not None:
                self.metrics.queue_depth.set(batcher.depth + self._inbox.qsize())
            if batch is not None:
                self._observe_wait(min(p.payload[1] for p in batch.items))
                self._run_batch([p.payload[0] for p in batch.items])
            elif stopping and batcher.depth == 0 and self._inbox.empty():
                return

    def _wait_sec(self, batcher: MicroBatcher[tuple[Job[J], int]], stopping: bool) -> float:
        due_ms = batcher.due_in_ms()
        if stopping:
            return 0.0
        return IDLE_WAIT_SEC if due_ms is None else due_ms / 1000

    def _fill(self, batcher: MicroBatcher[tuple[Job[J], int]], wait_sec: float) -> None:
        """Move inbox jobs into the batcher; wait up to ``wait_sec`` for the first one."""
        block = wait_sec > 0
        while not batcher.is_full:
            try:
                queued = self._inbox.get(block=block, timeout=wait_sec if block else None)
            except queue.Empty:
                return
            block = False
            if not batcher.offer(queued, queued[0].n_tokens):
                raise AssertionError("batcher refused a job while not full")

    def _observe_wait(self, submitted_ms: int) -> None:
        """Queue wait of a batch: how long its oldest job waited since ``submit``."""
        if self.metrics is not None:
            waited_sec = (self.clock_ms() - submitted_ms) / 1000
            self.metrics.stage_seconds.labels("queue_wait").observe(waited_sec)

    def _run_batch(self, jobs: list[Job[J]]) -> None:
        classifier = self.classifier
        predictions = predict_isolating(
            classifier, [j.text for j in jobs], [j.entities for j in jobs]
        )
        for job, prediction in zip(jobs, predictions, strict=True):
            self._outbox.put(Result(job, prediction, classifier.version))
        with self._lock:
            self._busy -= len(jobs)
        self._finished.set()
