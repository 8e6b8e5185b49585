"""Exceptions of the monitor package. Each says when it is raised and what the operator does."""

from __future__ import annotations


class FinMonError(Exception):
    """Root of every FinMon error."""


class ConfigError(FinMonError):
    """A setting is missing or invalid. Raised at start-up only; fix the named key and restart."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(f"config error at {key!r}: {problem}; fix: {fix}")


class InvalidMessage(FinMonError):
    """An input message breaks the contract. The worker routes it to the dead-letter topic.

    ``reason`` is a short machine-readable code (for the DLQ header and the metric label);
    ``detail`` is a human sentence.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class ModelLoadError(FinMonError):
    """A model directory is missing files or is not in FinMon's export format.

    Point ``model.path`` at a directory written by ``finmon train`` (or ``finmon demo``).
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"cannot load model from {path!r}: {problem}")
