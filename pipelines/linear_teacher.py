"""A bag-of-n-grams teacher: TF-IDF word and character n-grams into a logistic regression.

Encoders of one family make the same mistakes: on the holdout, an ensemble of five MiniLM-L6
models trained with different seeds and recipes scores about what the best of them scores. A
linear model over word and character n-grams errs elsewhere, so it is a cheap second opinion for
distillation: it fits in seconds on a CPU, and joins the teachers' mean with its own weight, per
task (``linear_teacher: {sentiment: 0.3}``).

It labels every training text for its task. The texts of the task it learns from get
out-of-fold probabilities (k-fold cross-fitting): fitted on them, it would nearly echo their
gold labels. The other tasks' texts, which it never saw, get the model fitted on all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipelines.prepare import TaskData

logger = logging.getLogger(__name__)

FOLDS = 5
INVERSE_REGULARISATION = 10.0
MAX_ITERATIONS = 3000


def _pipeline(seed: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        # Every word counts (a corpus may have no word twice); character n-grams seen twice.
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
    )
    classifier = LogisticRegression(
        C=INVERSE_REGULARISATION, max_iter=MAX_ITERATIONS, random_state=seed
    )
    return make_pipeline(features, classifier)


def _probabilities(model: Any, texts: Sequence[str], n_labels: int) -> np.ndarray:
    """``[len(texts), n_labels]`` in label-id order; labels absent from the fit get 0."""
    out = np.zeros((len(texts), n_labels), dtype=np.float32)
    if len(texts):
        out[:, model.classes_] = model.predict_proba(list(texts))
    return out


def fit_predict(
    texts: Sequence[str], labels: np.ndarray, others: Sequence[str], n_labels: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(out-of-fold probabilities for ``texts``, probabilities for ``others`` from a fit on all
    of ``texts``). Folds are stratified; a label too rare for ``FOLDS`` folds gets fewer."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels)
    folds = max(2, min(FOLDS, int(counts[counts > 0].min())))
    own = np.zeros((len(texts), n_labels), dtype=np.float32)
    text_array = np.asarray(texts, dtype=object)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_index, predict_index in splitter.split(text_array, labels):
        model = _pipeline(seed).fit(list(text_array[fit_index]), labels[fit_index])
        own[predict_index] = _probabilities(model, text_array[predict_index], n_labels)
    full = _pipeline(seed).fit(list(texts), labels)
    return own, _probabilities(full, others, n_labels)


def linear_targets(
    tasks: Mapping[str, TaskData], weights: Mapping[str, float], seed: int
) -> dict[str, np.ndarray]:
    """``{task: [n_train_texts, n_labels]}`` for each task in ``weights``, rows in the training
    order (each task's train texts in turn, as ``encode`` lays them out). Blocking."""
    names = list(tasks)
    out: dict[str, np.ndarray] = {}
    for task in weights:
        data = tasks[task]
        others = [t for name in names if name != task for t in tasks[name].train["text"]]
        own, rest = fit_predict(
            data.train["text"].tolist(),
            data.train["label"].to_numpy(),
            others,
            len(data.spec.names),
            seed,
        )
        parts, rest_at = [], 0
        for name in names:
            if name == task:
                parts.append(own)
            else:
                size = len(tasks[name].train)
                parts.append(rest[rest_at : rest_at + size])
                rest_at += size
        out[task] = np.concatenate(parts).astype(np.float32)
        logger.info("linear teacher: %s probabilities for %d texts", task, len(out[task]))
    return out


def mix_targets(
    teachers: Mapping[str, np.ndarray] | None,
    linear: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
) -> dict[str, np.ndarray]:
    """Per task, ``(1 - w) * teachers + w * linear``; the linear teacher alone where there is
    no other teacher; tasks without a linear weight keep the teachers' probabilities."""
    out = dict(teachers or {})
    for task, values in linear.items():
        weight = weights[task]
        base = out.get(task)
        out[task] = values if base is None else ((1 - weight) * base + weight * values)
        out[task] = out[task].astype(np.float32)
    return out
