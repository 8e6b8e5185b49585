"""The model-owner thread: bounded inbox, batches, per-item isolation of failures."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from monitor.classify.batcher import BatchPolicy
from monitor.classify.entities import EntityQuery
from monitor.classify.owner import Job, ModelOwner
from monitor.contract import Prediction
from tests.keyword_classifier import KeywordClassifier
from tests.polling import wait_until


class GatedClassifier(KeywordClassifier):
    """Blocks every predict call until the gate opens; records batch sizes."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.batches: list[int] = []

    def predict(
        self, texts: Sequence[str], entities: Sequence[Sequence[EntityQuery]] | None = None
    ) -> list[Prediction]:
        self.gate.wait(10)
        if any("poison" in t for t in texts):
            raise RuntimeError("bad item")
        self.batches.append(len(texts))
        return super().predict(texts)


def test_inbox_is_bounded_and_everything_comes_back() -> None:
    clf = GatedClassifier()
    policy = BatchPolicy(max_batch_items=4, max_batch_tokens=1000, max_wait_ms=0, max_queue_items=4)
    owner: ModelOwner[int] = ModelOwner(clf, policy)
    owner.start()
    accepted = 0
    for i in range(100):
        if not owner.submit(Job(f"oil plunge {i}", 4, i)):
            break
        accepted += 1
    assert accepted < 100, "a full inbox must refuse work"
    assert accepted <= 4 + 4 + 4  # inbox + batcher + the batch in the model
    clf.gate.set()
    assert wait_until(lambda: owner.pending == 0)
    results = owner.results()
    owner.stop()
    assert sorted(job.context for job, _, _ in results) == list(range(accepted))
    assert all(isinstance(p, Prediction) for _, p, _ in results)
    assert max(clf.batches) <= 4


def test_a_failing_item_fails_alone() -> None:
    clf = GatedClassifier()
    clf.gate.set()
    policy = BatchPolicy(
        max_batch_items=8, max_batch_tokens=1000, max_wait_ms=50, max_queue_items=16
    )
    owner: ModelOwner[str] = ModelOwner(clf, policy)
    owner.start()
    for text in ("fed holds", "poison pill", "oil plunge"):
        assert owner.submit(Job(text, 3, text))
    owner.stop()
    results = dict((job.context, p) for job, p, _ in owner.results())
    assert isinstance(results["poison pill"], RuntimeError)
    assert isinstance(results["fed holds"], Prediction)
    assert results["oil plunge"].sentiment == "negative"  # type: ignore[union-attr]


class Versioned(GatedClassifier):
    def __init__(self, version: str) -> None:
        super().__init__()
        self.version = version
        self.entered = threading.Event()

    def predict(
        self, texts: Sequence[str], entities: Sequence[Sequence[EntityQuery]] | None = None
    ) -> list[Prediction]:
        self.entered.set()
        return super().predict(texts)


def test_swap_happens_between_batches_and_each_result_names_its_model() -> None:
    old, new = Versioned("v1"), Versioned("v2")
    new.gate.set()
    policy = BatchPolicy(max_batch_items=2, max_batch_tokens=1000, max_wait_ms=0, max_queue_items=8)
    owner: ModelOwner[int] = ModelOwner(old, policy)
    owner.start()
    for i in range(6):
        assert owner.submit(Job(f"fed {i}", 3, i))
    assert old.entered.wait(10)  # the first batch is inside the old model
    swapped = threading.Event()
    owner.swap(new, swapped.set)
    old.gate.set()
    assert wait_until(lambda: owner.pending == 0)
    owner.stop()
    versions = [version for _, _, version in sorted(owner.results(), key=lambda r: r.job.context)]
    assert swapped.is_set()
    assert versions[:2] == ["v1", "v1"]  # the batch running at the swap ends on the old model
    assert versions[-1] == "v2"
    switch = versions.index("v2")
    assert versions[switch:] == ["v2"] * (6 - switch)  # one switch point, never back
    assert sum(old.batches) + sum(new.batches) == 6  # every item scored once, by one model


def test_abandon_drops_the_queue_and_lets_the_running_batch_finish() -> None:
    clf = Versioned("v1")
    policy = BatchPolicy(max_batch_items=2, max_batch_tokens=1000, max_wait_ms=0, max_queue_items=8)
    owner: ModelOwner[int] = ModelOwner(clf, policy)
    owner.start()
    for i in range(8):
        assert owner.submit(Job(f"fed {i}", 3, i))
    assert clf.entered.wait(10)  # batch [0, 1] is in the model; six wait behind it
    owner.abandon_queued()
    clf.gate.set()
    assert wait_until(lambda: owner.pending == 0)
    owner.stop()
    assert sorted(r.job.context for r in owner.results()) == [0, 1]
    assert clf.batches == [2]


def test_wait_results_wakes_when_a_batch_is_done() -> None:
    clf = GatedClassifier()
    policy = BatchPolicy(max_batch_items=4, max_batch_tokens=1000, max_wait_ms=0)
    owner: ModelOwner[int] = ModelOwner(clf, policy)
    owner.start()
    assert owner.submit(Job("oil plunge", 4, 0))
    assert owner.wait_results(0.01) is False  # the batch is held at the gate: nothing yet
    clf.gate.set()
    assert owner.wait_results(10.0) is True
    assert [job.context for job, _, _ in owner.results()] == [0]
    assert owner.wait_results(0.0) is False  # collected: nothing left to wait for
    owner.stop()
