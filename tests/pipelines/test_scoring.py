from __future__ import annotations

import numpy as np
import pytest

from pipelines.scoring import confusion, expected_calibration_error, report


def test_confusion_counts_pairs() -> None:
    matrix = confusion([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_confusion_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"0\.\.1"):
        confusion([0, 2], [0, 1], 2)


def test_report_on_hand_built_matrix() -> None:
    # rows true, columns predicted
    matrix = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 8]])
    rep = report(matrix, ("a", "b", "c"))
    assert rep.n == 20
    assert rep.accuracy == pytest.approx(16 / 20)
    a, b, c = rep.per_class
    assert (a.precision, a.recall) == (pytest.approx(5 / 7), pytest.approx(5 / 6))
    assert (b.precision, b.recall) == (pytest.approx(3 / 4), pytest.approx(3 / 6))
    assert (c.precision, c.recall) == (pytest.approx(8 / 9), pytest.approx(1.0))
    f1 = [2 * p * r / (p + r) for p, r in ((5 / 7, 5 / 6), (3 / 4, 1 / 2), (8 / 9, 1.0))]
    assert rep.macro_f1 == pytest.approx(sum(f1) / 3)
    assert rep.weighted_f1 == pytest.approx((6 * f1[0] + 6 * f1[1] + 8 * f1[2]) / 20)
    assert rep.macro_recall == pytest.approx((5 / 6 + 1 / 2 + 1) / 3)
    assert rep.to_json()["per_class"]["b"]["support"] == 6


def test_absent_class_is_left_out_of_macro_average() -> None:
    rep = report(np.array([[2, 0, 0], [0, 2, 0], [0, 0, 0]]), ("a", "b", "c"))
    assert rep.macro_f1 == pytest.approx(1.0)
    assert rep.per_class[2].support == 0


def test_ece_of_perfectly_calibrated_and_overconfident() -> None:
    truth = np.array([0, 0, 0, 1])
    calibrated = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(calibrated, truth) == pytest.approx(0.0)
    overconfident = np.array([[1.0, 0.0]] * 4)
    assert expected_calibration_error(overconfident, truth) == pytest.approx(0.25)
