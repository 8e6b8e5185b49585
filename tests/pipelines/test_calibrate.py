from __future__ import annotations

import numpy as np

from pipelines.calibrate import fit_temperature, nll


def _overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 3-class model that is right 70% of the time but says so with ~99% confidence."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    predicted = np.where(rng.random(n) < 0.7, labels, (labels + rng.integers(1, 3, n)) % 3)
    logits = np.zeros((n, 3))
    logits[np.arange(n), predicted] = 5.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, labels


def test_overconfident_model_gets_t_above_one_and_lower_nll() -> None:
    probs, labels = _overconfident()
    t = fit_temperature(probs, labels)
    assert t > 1.5
    log_probs = np.log(probs)
    assert nll(log_probs, labels, t) < nll(log_probs, labels, 1.0)
    # calibrated confidence of the top label is close to the 70% accuracy
    scaled = np.exp(log_probs / t)
    scaled /= scaled.sum(axis=1, keepdims=True)
    assert abs(scaled.max(axis=1).mean() - 0.7) < 0.03


def test_temperature_keeps_every_argmax_and_handles_empty() -> None:
    probs, labels = _overconfident(200)
    t = fit_temperature(probs, labels)
    scaled = np.exp(np.log(probs) / t)
    assert (scaled.argmax(axis=1) == probs.argmax(axis=1)).all()
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
