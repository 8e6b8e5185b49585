"""Knowledge distillation from a trained finmon model (the teacher) into the model in training.

No tweet carries both labels, so a plain multi-task run sees each text for one task only. A
teacher, an exported multi-task model, gives every training text a probability vector for every
task it has; the student then learns sentiment from the topic tweets and topic from the
sentiment tweets too (soft cross-task labels), and dark knowledge on the labelled task. The
teacher only ever sees training texts: the holdout and test sets are never labelled by it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from monitor.classify.model import load_model
from monitor.errors import ModelLoadError
from pipelines.batching import Encoded, encode
from pipelines.errors import TrainConfigError
from pipelines.predict import predict_encoded_tasks

logger = logging.getLogger(__name__)

SoftTargets = Mapping[str, np.ndarray]


def teacher_targets(
    teacher_dir: str | Path,
    texts: list[str],
    labels: Mapping[str, tuple[str, ...]],
    *,
    max_length_tokens: int,
    batch_size: int,
    device: torch.device,
    bf16: bool = False,
) -> dict[str, np.ndarray]:
    """The teacher's calibrated probabilities ``{task: [len(texts), n_labels]}`` for ``texts``
    (already normalised), in the student's label order. Blocking.

    Raises TrainConfigError when the teacher lacks a task or its label set differs.
    """
    path = Path(teacher_dir)
    try:
        teacher, tokenizer = load_model(path)
    except ModelLoadError as exc:
        raise TrainConfigError("teacher", f"cannot load {path} ({exc})") from exc
    teacher.to(device)
    for task, names in labels.items():
        have = teacher.meta.labels.get(task)
        if have is None:
            raise TrainConfigError("teacher", f"{path} has no {task!r} head")
        if set(have) != set(names):
            raise TrainConfigError("teacher", f"{path} labels {task} as {have}, not {names}")
    data = encode(tokenizer, {"_": (texts, np.zeros(len(texts)))}, ["_"], max_length_tokens)
    probs = predict_encoded_tasks(
        teacher,
        data,
        list(labels),
        batch_size=batch_size,
        pad_id=int(tokenizer.pad_token_id or 0),
        device=device,
        bf16=bf16,
    )
    out: dict[str, np.ndarray] = {}
    for task, names in labels.items():
        order = [list(teacher.meta.labels[task]).index(name) for name in names]
        out[task] = probs[task][:, order].astype(np.float32)
    logger.info("teacher %s: %d texts labelled for %s", path, len(texts), ", ".join(labels))
    return out


def ensemble_targets(
    teacher_dirs: Sequence[str | Path],
    texts: list[str],
    labels: Mapping[str, tuple[str, ...]],
    *,
    max_length_tokens: int,
    batch_size: int,
    device: torch.device,
    bf16: bool = False,
) -> dict[str, np.ndarray]:
    """The mean of several teachers' probabilities (each as :func:`teacher_targets`). Blocking."""
    if not teacher_dirs:
        raise TrainConfigError("teacher", "no teacher directory given")
    total: dict[str, np.ndarray] = {}
    for path in teacher_dirs:
        probs = teacher_targets(
            path,
            texts,
            labels,
            max_length_tokens=max_length_tokens,
            batch_size=batch_size,
            device=device,
            bf16=bf16,
        )
        for task, values in probs.items():
            total[task] = total[task] + values if task in total else values
    return {task: (v / len(teacher_dirs)).astype(np.float32) for task, v in total.items()}


def distill_loss(
    logits: Mapping[str, torch.Tensor], soft: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Mean over (example, task) pairs of the cross-entropy between the teacher's probabilities
    and the student's softmax (KL divergence plus the teacher's constant entropy)."""
    total = next(iter(logits.values())).new_zeros((), dtype=torch.float32)
    count = 0
    for task, task_logits in logits.items():
        target = soft.get(task)
        if target is None:
            continue
        log_probs = nn.functional.log_softmax(task_logits.float(), dim=-1)
        total = total - (target * log_probs).sum()
        count += int(target.shape[0])
    return total / max(count, 1)


def batch_targets(
    soft: SoftTargets, index: np.ndarray, device: torch.device
) -> dict[str, torch.Tensor]:
    """The soft targets of one batch's examples."""
    return {t: torch.from_numpy(v[index]).to(device) for t, v in soft.items()}


def check_aligned(soft: SoftTargets, data: Encoded) -> None:
    for task, values in soft.items():
        if len(values) != len(data):
            raise ValueError(f"{task} soft targets: {len(values)} rows for {len(data)} examples")


__all__ = [
    "SoftTargets",
    "batch_targets",
    "check_aligned",
    "distill_loss",
    "ensemble_targets",
    "teacher_targets",
]
