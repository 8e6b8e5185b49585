"""Classification metrics from a confusion matrix, and expected calibration error.

Rows of a confusion matrix are true labels, columns predictions. Classes that never occur and
are never predicted get precision = recall = F1 = 0 and support 0; macro averages are taken over
the classes with support > 0, as scikit-learn does with ``labels=`` the observed classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClassScore:
    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Report:
    """Accuracy, macro and weighted P/R/F1, and a per-class table."""

    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    per_class: tuple[ClassScore, ...]
    n: int

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in self.__dict__.items() if k != "per_class"}
        out["per_class"] = {c.name: {**c.__dict__} for c in self.per_class}
        for scores in out["per_class"].values():
            scores.pop("name")
        return out


def confusion(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, n: int
) -> np.ndarray:
    """``n x n`` counts; raises ValueError on mismatched lengths or out-of-range ids."""
    true, pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"{true.shape[0]} labels but {pred.shape[0]} predictions")
    if true.size and (min(true.min(), pred.min()) < 0 or max(true.max(), pred.max()) >= n):
        raise ValueError(f"label ids must be in 0..{n - 1}")
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def report(matrix: np.ndarray, names: Sequence[str]) -> Report:
    """Scores from a confusion matrix (rows true, columns predicted)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    total = float(support.sum())
    seen = support > 0
    weights = support / total if total else support

    def macro(values: np.ndarray) -> float:
        return float(values[seen].mean()) if seen.any() else 0.0

    per_class = tuple(
        ClassScore(str(name), float(p), float(r), float(f), int(s))
        for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
    )
    return Report(
        accuracy=float(tp.sum() / total) if total else 0.0,
        macro_precision=macro(precision),
        macro_recall=macro(recall),
        macro_f1=macro(f1),
        weighted_precision=float((precision * weights).sum()),
        weighted_recall=float((recall * weights).sum()),
        weighted_f1=float((f1 * weights).sum()),
        per_class=per_class,
        n=int(total),
    )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins: sum over bins of |acc - conf| * share."""
    if len(y_true) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += abs(correct[in_bin].mean() - confidence[in_bin].mean()) * in_bin.mean()
    return float(ece)
