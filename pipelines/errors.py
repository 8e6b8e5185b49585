"""Exceptions of the training pipeline. Each says when it is raised and what the operator does."""

from __future__ import annotations

from monitor.errors import FinMonError


class PipelineError(FinMonError):
    """Root of the training and evaluation errors."""


class DataError(PipelineError):
    """A data file cannot be used as given.

    ``row`` is the 1-based record number (header excluded), ``column`` the column name; either is
    ``None`` when the problem is not tied to one. Fix the named cell or pass the right
    ``--text-col`` / ``--label-col``.
    """

    def __init__(
        self, file: str, problem: str, *, row: int | None = None, column: str | None = None
    ):
        self.file = file
        self.problem = problem
        self.row = row
        self.column = column
        where = file
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {problem}")


class TrainConfigError(PipelineError):
    """A training option is invalid. Raised before any training starts; fix the named key."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"training config {key!r}: {problem}")


class CheckpointError(PipelineError):
    """``--resume`` found no usable checkpoint, or one written for a different config."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"checkpoint {path!r}: {problem}")
