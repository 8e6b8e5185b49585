"""One bad item costs only itself: bisect a failing batch, and tell a bad item from a dead model.

:func:`predict_isolating` runs a batch; when it raises, the batch is split in halves (recursively)
until every failing item is alone, and every other item is still scored. When some item fails on
its own, a known-good probe text is run: if the probe fails too, the model or its device is gone
(CUDA lost, weights unloadable), which no dead letter can fix, so :class:`ModelUnavailable` is
raised and the daemon exits with that message instead of dead-lettering every item that follows.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from monitor.classify.entities import EntityQuery
from monitor.classify.protocol import Classifier
from monitor.contract import Prediction
from monitor.errors import FinMonError

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Ordinary financial text every model accepts; numbered so no prediction cache answers it.
PROBE_TEXT = "Shares of the company rose after quarterly earnings beat forecasts"
_probe_numbers = itertools.count()


class ModelUnavailable(FinMonError):
    """The model failed on a known-good probe text: the model or its device is unusable.

    Not caused by a message. The classify role stops (its uncommitted items are redelivered);
    check the device (``model.device``), its memory and ``model.path``, then restart.
    """

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(
            f"the model failed on a known-good probe text ({type(cause).__name__}: {cause}); "
            "the model or its device is unavailable, not a bad message: check model.device, "
            "device memory and model.path, then restart"
        )


def isolate(fn: Callable[[Sequence[T]], Sequence[R]], items: Sequence[T]) -> list[R | Exception]:
    """``fn(items)``, or when it raises, the result of each item with failures bisected out.

    ``fn`` must return one result per item; a result of the wrong length counts as a failure.
    A single failing item among n costs about 2 log2(n) extra calls.
    """
    if not items:
        return []
    try:
        results = list(fn(items))
        if len(results) != len(items):
            raise ValueError(f"{len(results)} results for {len(items)} items")
        return list(results)
    except Exception as exc:
        if len(items) == 1:
            return [exc]
    middle = len(items) // 2
    return isolate(fn, items[:middle]) + isolate(fn, items[middle:])


def check_model(classifier: Classifier) -> None:
    """Raise :class:`ModelUnavailable` when the classifier fails on the probe text."""
    try:
        classifier.predict([f"{PROBE_TEXT} ({next(_probe_numbers)})"])
    except Exception as exc:
        raise ModelUnavailable(exc) from exc


def predict_isolating(
    classifier: Classifier,
    texts: Sequence[str],
    entities: Sequence[Sequence[EntityQuery]] | None = None,
) -> list[Prediction | Exception]:
    """One prediction or exception per text (``entities[i]``: the entities asked about text
    ``i``). Raises ModelUnavailable (see the module docstring)."""
    asked = [tuple(e) for e in entities] if entities is not None else [()] * len(texts)

    def run(items: Sequence[tuple[str, tuple[EntityQuery, ...]]]) -> list[Prediction]:
        return classifier.predict([t for t, _ in items], [q for _, q in items])

    results = isolate(run, list(zip(texts, asked, strict=True)))
    failures = [r for r in results if isinstance(r, Exception)]
    if failures:
        logger.warning(
            "%d of %d texts failed in the model (first: %r); checking the model",
            len(failures),
            len(texts),
            failures[0],
        )
        check_model(classifier)
    return results
