"""The reload logic with in-memory classifiers: canary checks, rejection, the export watcher."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from monitor.classify.entities import EntityQuery
from monitor.classify.protocol import Classifier
from monitor.contract import Prediction
from monitor.metrics import Metrics
from monitor.reload import CanaryFailed, ModelReloader, canary_texts
from monitor.settings import ReloadSettings
from tests.keyword_classifier import KeywordClassifier
from tests.polling import wait_until


class Named(KeywordClassifier):
    def __init__(self, version: str) -> None:
        self.version = version


class NaNClassifier(Named):
    def predict(
        self, texts: Sequence[str], entities: Sequence[Sequence[EntityQuery]] | None = None
    ) -> list[Prediction]:
        return [Prediction({"Markets": math.nan}, {"neutral": 1.0}) for _ in texts]


class Contrarian(Named):
    """Sane probabilities, sentiment flipped: agrees with the keyword model on no sentiment."""

    def predict(
        self, texts: Sequence[str], entities: Sequence[Sequence[EntityQuery]] | None = None
    ) -> list[Prediction]:
        out = []
        for p in super().predict(texts):
            negative = 0.1 if p.sentiment == "negative" else 0.8
            sentiment = {"negative": negative, "neutral": 1.0 - negative, "positive": 0.0}
            out.append(Prediction(p.topic_probs, sentiment))
        return out


def _reloader(
    metrics: Metrics, path: Path, models: dict[str, Callable[[], Classifier]], swaps: list[str]
) -> ModelReloader:
    def load(where: str) -> Classifier:
        return models[Path(where).name]()

    def swap(new: Classifier, done: Callable[[], None]) -> bool:
        swaps.append(new.version)
        done()
        return True

    settings = ReloadSettings(canary_items=40, min_agreement=0.8, watch_interval_ms=100)
    return ModelReloader(settings, str(path), load, swap, metrics, canary_texts(settings))


def _export(root: Path, name: str) -> Path:
    out = root / name
    out.mkdir()
    (out / "weights").write_text(name)
    return out


def _point(link: Path, target: Path) -> None:
    """Switch a `current` symlink atomically (new link, then rename over the old one)."""
    tmp = link.with_name(link.name + ".new")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _rejected(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "finmon_model_reloads_total", {"outcome": "rejected", "reason": reason}
    )
    return value or 0.0


def test_good_candidate_swaps_bad_ones_are_rejected_and_old_keeps_serving(
    metrics: Metrics, tmp_path: Path
) -> None:
    current = tmp_path / "current"
    _point(current, _export(tmp_path, "v1"))
    for name in ("v2", "nan", "flip", "broken"):
        _export(tmp_path, name)

    def broken() -> Classifier:
        raise OSError("truncated safetensors")

    models: dict[str, Callable[[], Classifier]] = {
        "v2": lambda: Named("v2"),
        "nan": lambda: NaNClassifier("nan"),
        "flip": lambda: Contrarian("flip"),
        "broken": broken,
    }
    swaps: list[str] = []
    reloader = _reloader(metrics, current, models, swaps)
    reloader.warm(Named("v1"))
    assert metrics.registry.get_sample_value("finmon_model_info", {"version": "v1"}) == 1
    for name, reason in (("nan", "sanity"), ("flip", "agreement"), ("broken", "load")):
        _point(current, tmp_path / name)
        answer = reloader.reload()
        assert not answer.swapped and answer.detail["reason"] == reason
        assert answer.detail["version"] == "v1"
        assert _rejected(metrics, reason) == 1
    assert swaps == [] and reloader.version == "v1"
    _point(current, tmp_path / "v2")
    answer = reloader.reload("sighup")
    assert answer.swapped and answer.detail == {"outcome": "swapped", "from": "v1", "version": "v2"}
    assert swaps == ["v2"]
    assert metrics.registry.get_sample_value("finmon_model_info", {"version": "v2"}) == 1


def test_watcher_loads_a_switched_export_once_it_is_stable_and_never_retries_a_bad_one(
    metrics: Metrics, tmp_path: Path
) -> None:
    current = tmp_path / "current"
    _point(current, _export(tmp_path, "v1"))
    _export(tmp_path, "v2")
    _export(tmp_path, "nan")
    swaps: list[str] = []
    models: dict[str, Callable[[], Classifier]] = {
        "v2": lambda: Named("v2"),
        "nan": lambda: NaNClassifier("nan"),
    }
    reloader = _reloader(metrics, current, models, swaps)
    reloader.warm(Named("v1"))
    reloader.poll_export()
    assert swaps == []  # nothing new
    _point(current, tmp_path / "nan")
    reloader.poll_export()  # first sight: wait for a second poll to see the same files
    assert _rejected(metrics, "sanity") == 0
    for _ in range(3):
        reloader.poll_export()
    assert _rejected(metrics, "sanity") == 1  # rejected once, not on every poll
    _point(current, tmp_path / "v2")
    reloader.poll_export()
    reloader.poll_export()
    assert swaps == ["v2"]
    (tmp_path / "v2" / "weights").write_text("retrained in place")  # a new export in the dir
    reloader.poll_export()
    reloader.poll_export()
    assert swaps == ["v2", "v2"]


def test_a_first_model_that_is_not_sane_stops_the_start(metrics: Metrics, tmp_path: Path) -> None:
    reloader = _reloader(metrics, tmp_path, {}, [])
    with pytest.raises(CanaryFailed, match="sanity"):
        reloader.warm(NaNClassifier("nan"))


def test_canary_file_gives_the_texts(tmp_path: Path) -> None:
    path = tmp_path / "canary.txt"
    path.write_text("Oil prices plunge\n\nFed holds rates\nAcme beats estimates\n")
    texts = canary_texts(ReloadSettings(canary_file=str(path), canary_items=2))
    assert texts == ["Oil prices plunge", "Fed holds rates"]
    synthetic = canary_texts(ReloadSettings(canary_items=30))
    assert len(synthetic) == 30 and len(set(synthetic)) > 20
    assert synthetic == canary_texts(ReloadSettings(canary_items=30))  # seeded, the same each start


def test_a_request_reloads_on_the_watcher_thread(metrics: Metrics, tmp_path: Path) -> None:
    """What SIGHUP does: the handler only asks; the watcher thread loads, checks and swaps."""
    current = tmp_path / "current"
    _point(current, _export(tmp_path, "v1"))
    swaps: list[str] = []
    reloader = _reloader(metrics, current, {"v1": lambda: Named("v1-again")}, swaps)
    reloader.warm(Named("v1"))
    reloader.start()
    try:
        reloader.request()
        assert wait_until(lambda: swaps == ["v1-again"])
    finally:
        reloader.stop()
    assert not reloader.watching()
