"""Linear-probe head initialisation: fit each task head on the frozen encoder before fine-tuning.

A fresh head is random, so the first hundreds of fine-tuning steps spend their gradient teaching
it what the pretrained sentence vectors already separate, and the encoder's features bend to serve
a random head meanwhile. Fitting each head first as a logistic regression on the frozen pooled
vectors of the training texts (LP-FT: Kumar et al. 2022, "Fine-Tuning can Distort Pretrained
Features and Underperform Out-of-Distribution") starts fine-tuning from a head that is already
right on most texts: on the Twitter Financial News holdout, probes on all-mpnet-base-v2 score
0.80 (sentiment) and 0.81 (topic) macro-F1 before any encoder step.

Only gold-labelled training examples are read (never holdout or test texts). One pass of the
encoder over them (no gradients) plus one small multinomial fit per task.
"""

from __future__ import annotations

import logging
import time
from typing import cast

import numpy as np
import torch
from torch import nn

from monitor.classify.model import MultiTaskModel
from pipelines.batching import IGNORE, Encoded
from pipelines.predict import predict_encoded_outputs

logger = logging.getLogger(__name__)

# Inverse L2 strength of the probes: of 1, 10 and 100, 1 gave the best holdout accuracy for both
# tasks on all-mpnet-base-v2 and all-MiniLM-L6-v2 (docs/training-log.md, run 14).
INVERSE_REGULARISATION = 1.0
MAX_ITERATIONS = 2000
# Logit bias of a class no training example carries: the probe never predicts it at the start.
ABSENT_CLASS_BIAS = -10.0


def probe_weights(
    features: np.ndarray, labels: np.ndarray, n_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial logistic regression on ``features``: ``(weight [n_classes, hidden], bias
    [n_classes])`` in the layout of ``nn.Linear``. Classes absent from ``labels`` get zero weights
    and a low bias; a two-class task gets the antisymmetric pair of the binary fit."""
    from sklearn.linear_model import LogisticRegression

    weight = np.zeros((n_classes, features.shape[1]), dtype=np.float32)
    bias = np.full(n_classes, ABSENT_CLASS_BIAS, dtype=np.float32)
    present = np.unique(labels)
    if len(present) < 2:
        if len(present) == 1:
            bias[int(present[0])] = 0.0
        return weight, bias
    fit = LogisticRegression(
        C=INVERSE_REGULARISATION, max_iter=MAX_ITERATIONS, random_state=seed
    ).fit(features, labels)
    classes = fit.classes_.astype(int)
    if len(classes) == 2:  # sklearn keeps one row: the log-odds of classes[1] over classes[0]
        half_w, half_b = fit.coef_[0] / 2, fit.intercept_[0] / 2
        weight[classes[0]], bias[classes[0]] = -half_w, -half_b
        weight[classes[1]], bias[classes[1]] = half_w, half_b
    else:
        weight[classes], bias[classes] = fit.coef_, fit.intercept_
    return weight, bias


def init_heads_from_probe(
    model: MultiTaskModel,
    data: Encoded,
    *,
    pad_id: int,
    device: torch.device,
    bf16: bool,
    seed: int,
) -> dict[str, float]:
    """Set every head of ``model`` to a linear probe fitted on its task's labelled examples in
    ``data``; returns each probe's training accuracy. Blocking."""
    started = time.monotonic()
    outputs = predict_encoded_outputs(
        model, data, [], batch_size=128, pad_id=pad_id, device=device, bf16=bf16, features=True
    )
    features = cast(np.ndarray, outputs.pooled)  # never None with features=True
    accuracy: dict[str, float] = {}
    for task, module in model.heads.items():
        head = cast(nn.Linear, module)
        labels = data.labels[task]
        rows = labels != IGNORE
        if not rows.any():
            continue
        weight, bias = probe_weights(features[rows], labels[rows], head.out_features, seed)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(weight))
            head.bias.copy_(torch.from_numpy(bias))
        predicted = (features[rows] @ weight.T + bias).argmax(axis=1)
        accuracy[task] = float((predicted == labels[rows]).mean())
    logger.info(
        "probe heads fitted on %d texts in %.0f s (train accuracy %s)",
        len(data),
        time.monotonic() - started,
        {task: round(value, 4) for task, value in accuracy.items()},
    )
    return accuracy
