"""Model hot reload: load a new export off the hot path, check it on a canary set, swap it in.

Triggers: a new export in ``model.path`` (files rewritten in place, or a ``current`` symlink
switched atomically; the watcher waits until two polls see the same files), SIGHUP
(:meth:`ModelReloader.request`), or ``POST /admin/reload`` (:meth:`ModelReloader.reload`).

A reload runs on the watcher's (or the HTTP request's) thread, never on the model thread: the
candidate is loaded, then warmed by scoring the canary texts, then checked:

- sanity: every probability finite and in [0, 1], each task's probabilities summing to 1;
- agreement: on at least ``reload.min_agreement`` of the canary texts, per task, the candidate
  predicts the label the serving model predicts.

A candidate that fails is rejected with one WARNING line naming the check, a count on
``finmon_model_reloads_total{outcome="rejected",reason=...}``, and the old model keeps serving. One
that passes is handed to the model owner, which switches between two batches (see
:meth:`monitor.classify.owner.ModelOwner.swap`): the ``model_version`` of scored records changes
at one point, and no item is scored by both models.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.classify.protocol import Classifier
from monitor.contract import Prediction
from monitor.endpoints import ReloadAnswer
from monitor.errors import FinMonError
from monitor.metrics import Metrics
from monitor.settings import ReloadSettings

logger = logging.getLogger(__name__)

CANARY_SEED = 20_261_201
SWAP_TIMEOUT_SEC = 60.0
PROB_TOLERANCE = 1e-3

Loader = Callable[[str], Classifier]
Fingerprint = tuple[str, tuple[tuple[str, int, int], ...]]


class CanaryFailed(FinMonError):
    """A model failed the canary check (``reason``: warmup, sanity or agreement).

    At start-up the daemon stops (fix or replace the export); on reload the old model keeps serving.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"canary check failed ({reason}): {detail}")


def canary_texts(settings: ReloadSettings) -> list[str]:
    """The canary headlines: ``reload.canary_file`` (one per line), else seeded synthetic ones."""
    if settings.canary_file:
        lines = Path(settings.canary_file).read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip()][: settings.canary_items]
    from monitor.demo.generator import NewsGenerator

    generator = NewsGenerator(seed=CANARY_SEED, prefix="canary")
    return [generator.item().headline for _ in range(settings.canary_items)]


def sanity_problem(predictions: Sequence[Prediction], n_texts: int) -> str | None:
    """Why these canary predictions are not sane, or None."""
    if len(predictions) != n_texts:
        return f"{len(predictions)} predictions for {n_texts} texts"
    for i, prediction in enumerate(predictions):
        for task, probs in (
            ("topic", prediction.topic_probs),
            ("sentiment", prediction.sentiment_probs),
        ):
            values = list(probs.values())
            if not values:
                return f"text {i}: no {task} labels"
            if not all(
                math.isfinite(v) and -PROB_TOLERANCE <= v <= 1 + PROB_TOLERANCE for v in values
            ):
                return f"text {i}: {task} probabilities outside [0, 1] or not finite"
            if abs(sum(values) - 1.0) > PROB_TOLERANCE:
                return f"text {i}: {task} probabilities sum to {sum(values):.4f}"
    return None


def agreement(candidate: Sequence[Prediction], serving: Sequence[Prediction]) -> dict[str, float]:
    """Share of texts on which both models predict the same label, per task."""
    n = max(1, len(serving))
    return {
        "topic": sum(c.topic == s.topic for c, s in zip(candidate, serving, strict=True)) / n,
        "sentiment": sum(
            c.sentiment == s.sentiment for c, s in zip(candidate, serving, strict=True)
        )
        / n,
    }


def fingerprint(path: str) -> Fingerprint | None:
    """Where ``path`` resolves to, and each file there (name, size, mtime); None if absent."""
    real = os.path.realpath(path)
    try:
        entries = sorted(os.scandir(real), key=lambda e: e.name)
        files = tuple(
            (e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file()
        )
    except OSError:
        return None
    return real, files


@dataclass
class ModelReloader:
    """Warms the first model, then reloads, checks and swaps new ones. ``start`` / ``stop``.

    ``swap`` hands a checked candidate to the model owner and returns False when no owner runs;
    it calls ``on_swapped`` once the owner has switched.
    """

    settings: ReloadSettings
    model_path: str
    load: Loader
    swap: Callable[[Classifier, Callable[[], None]], bool]
    metrics: Metrics
    canary: list[str] = field(default_factory=list)
    describe: Callable[[Classifier], dict[str, str]] = lambda c: {"version": c.version}
    _baseline: list[Prediction] = field(init=False, default_factory=list)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _requested: threading.Event = field(init=False, default_factory=threading.Event)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _thread: threading.Thread | None = field(init=False, default=None)
    _serving: Fingerprint | None = field(init=False, default=None)
    _seen: Fingerprint | None = field(init=False, default=None)
    _rejected: Fingerprint | None = field(init=False, default=None)
    version: str = field(init=False, default="")

    def warm(self, classifier: Classifier) -> None:
        """Score the canary set with the first model; raises CanaryFailed if it is not sane."""
        self._serving = self._seen = fingerprint(self.model_path)
        self._baseline = self._score(classifier)
        self._serve(classifier)
        logger.info("model %s warmed on %d canary texts", classifier.version, len(self.canary))

    def request(self) -> None:
        """Ask for a reload on the watcher thread (safe in a signal handler). Never blocks."""
        self._requested.set()

    def reload(self, trigger: str = "admin") -> ReloadAnswer:
        """Load ``model.path`` now, check it, swap it in. Blocking; one reload at a time."""
        with self._lock:
            return self._reload_locked(trigger)

    def _reload_locked(self, trigger: str) -> ReloadAnswer:
        seen = fingerprint(self.model_path)
        answer = self._reload(trigger)
        if answer.swapped:
            self._serving = seen
        else:
            self._rejected = seen  # the watcher does not retry it until its files change
        self._seen = seen
        return answer

    def _reload(self, trigger: str) -> ReloadAnswer:
        path = os.path.realpath(self.model_path)
        logger.info("model reload (%s): loading %s", trigger, path)
        try:
            candidate = self.load(path)
        except Exception as exc:
            return self._reject("load", f"cannot load {path}: {exc}")
        try:
            scored = self._score(candidate)
            agree = agreement(scored, self._baseline)
            low = {
                task: share for task, share in agree.items() if share < self.settings.min_agreement
            }
            if low:
                raise CanaryFailed(
                    "agreement",
                    f"agrees with the serving model on {_shares(low)} of the canary texts "
                    f"(reload.min_agreement {self.settings.min_agreement})",
                )
        except CanaryFailed as exc:
            return self._reject(exc.reason, exc.detail, candidate.version)
        return self._swap_in(candidate, scored, agree)

    def _swap_in(
        self, candidate: Classifier, scored: list[Prediction], agree: dict[str, float]
    ) -> ReloadAnswer:
        swapped = threading.Event()
        if not self.swap(candidate, swapped.set) or not swapped.wait(SWAP_TIMEOUT_SEC):
            return self._reject("swap", "the classify role is not running", candidate.version)
        old = self.version
        self._baseline = scored
        self._serve(candidate)
        self.metrics.model_reloads.labels("swapped", "ok").inc()
        logger.info(
            "model reload: %s -> %s swapped in (canary agreement %s)",
            old,
            candidate.version,
            _shares(agree),
        )
        return ReloadAnswer(True, {"outcome": "swapped", "from": old, "version": candidate.version})

    def _reject(self, reason: str, detail: str, version: str = "") -> ReloadAnswer:
        self.metrics.model_reloads.labels("rejected", reason).inc()
        logger.warning(
            "model reload rejected (%s): %s; model %s keeps serving", reason, detail, self.version
        )
        body: dict[str, Any] = {"outcome": "rejected", "reason": reason, "detail": detail}
        return ReloadAnswer(False, {**body, "candidate": version, "version": self.version})

    def _score(self, classifier: Classifier) -> list[Prediction]:
        try:
            predictions = list(classifier.predict(self.canary))
        except Exception as exc:
            raise CanaryFailed("warmup", f"scoring the canary texts raised {exc!r}") from exc
        problem = sanity_problem(predictions, len(self.canary))
        if problem is not None:
            raise CanaryFailed("sanity", problem)
        return predictions

    def _serve(self, classifier: Classifier) -> None:
        self.version = classifier.version
        self.metrics.model_info.info(self.describe(classifier))

    # -- the watcher thread -------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="finmon-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._requested.set()
        if self._thread is not None:
            self._thread.join(5)

    def _watch(self) -> None:
        interval_sec = self.settings.watch_interval_ms / 1000
        while not self._stop.is_set():
            if self._requested.wait(interval_sec):
                self._requested.clear()
                if not self._stop.is_set():
                    self.reload("sighup")
            elif self.settings.watch:
                self.poll_export()

    def poll_export(self) -> None:
        """Reload when ``model.path`` shows a new export, unchanged since the last poll."""
        now = fingerprint(self.model_path)
        if now is None or now in (self._serving, self._rejected) or now != self._seen:
            self._seen = now  # nothing new, or still being written: look again next poll
            return
        with self._lock:
            if fingerprint(self.model_path) == now:
                self._reload_locked("new export")

    def watching(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def _shares(shares: dict[str, float]) -> str:
    return ", ".join(f"{task} {share:.0%}" for task, share in shares.items())
