"""The :class:`Classifier` protocol: what the classify step, the model owner and the reloader
call. It lives apart from :mod:`monitor.classify.engine` so that importing the Kafka side of the
daemon (and the aggregate and source roles) imports neither torch nor transformers; only
:func:`monitor.daemon.load_classifier` does, when a model is actually loaded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from monitor.classify.entities import EntityQuery
from monitor.contract import Prediction


class Classifier(Protocol):
    """Labels texts. Blocking; raises on a model failure (the caller dead-letters the batch)."""

    @property
    def version(self) -> str: ...

    def predict(
        self, texts: Sequence[str], entities: Sequence[Sequence[EntityQuery]] | None = None
    ) -> list[Prediction]: ...
