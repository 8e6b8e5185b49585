"""Temperature scaling (Guo et al., 2017): one scalar per task, fitted on the holdout.

Dividing the logits by ``T`` keeps every argmax (accuracy is unchanged) and only rescales the
confidence; ``T > 1`` softens an over-confident model. The alert logic and the webhooks read these
probabilities, so they should mean what they say. Fitted on the holdout, never on the test sets.
"""

from __future__ import annotations

import math

import numpy as np

LOG_T_RANGE = (-3.0, 3.0)  # T in [0.05, 20]
GOLDEN = (math.sqrt(5) - 1) / 2


def nll(log_probs: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(log_probs / T)``."""
    scaled = log_probs / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(scaled).sum(axis=1))
    return float(np.mean(log_norm - scaled[np.arange(len(labels)), labels]))


def fit_temperature(probs: np.ndarray, labels: np.ndarray, iterations: int = 60) -> float:
    """The ``T`` minimising holdout NLL (golden-section search on log T; NLL is unimodal in it).

    ``probs`` are the model's softmax outputs ``[n, classes]``: their logs differ from the logits
    by a per-row constant, which softmax ignores. Returns 1.0 for an empty holdout.
    """
    if len(labels) == 0:
        return 1.0
    log_probs = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0))
    lo, hi = LOG_T_RANGE
    a, b = hi - GOLDEN * (hi - lo), lo + GOLDEN * (hi - lo)
    fa, fb = nll(log_probs, labels, math.exp(a)), nll(log_probs, labels, math.exp(b))
    for _ in range(iterations):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - GOLDEN * (hi - lo)
            fa = nll(log_probs, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + GOLDEN * (hi - lo)
            fb = nll(log_probs, labels, math.exp(b))
    return round(math.exp((lo + hi) / 2), 4)
