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
import pandas as pd
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from monitor.classify.model import ENTITY, MultiTaskModel, load_model
from monitor.errors import ModelLoadError
from pipelines.batching import Encoded, encode
from pipelines.entities import encode_news, predict_entities
from pipelines.errors import TrainConfigError
from pipelines.labels import SENTIMENT_LABELS
from pipelines.predict import predict_encoded_outputs

logger = logging.getLogger(__name__)

SoftTargets = Mapping[str, np.ndarray]


def load_teacher(path: Path) -> tuple[MultiTaskModel, PreTrainedTokenizerBase]:
    """An exported finmon model as a teacher; a directory that does not load is a config
    error naming it."""
    try:
        return load_model(path)
    except ModelLoadError as exc:
        raise TrainConfigError("teacher", f"cannot load {path} ({exc})") from exc


def teacher_pass(
    teacher_dir: str | Path,
    texts: list[str],
    labels: Mapping[str, tuple[str, ...]],
    *,
    max_length_tokens: int,
    batch_size: int,
    device: torch.device,
    bf16: bool = False,
    news: pd.DataFrame | None = None,
) -> dict[str, np.ndarray]:
    """The teacher's calibrated probabilities ``{task: [len(texts), n_labels]}`` for ``texts``
    (already normalised), in the student's label order, from one pass. Blocking.

    With ``news`` (a news frame, :func:`pipelines.entities.load_news`), also ``{ENTITY:
    [n_entities, n_labels]}``: its entity head on every entity of every row, in row then entity
    order, NaN for an entity the teacher's tokenizer does not find in the (truncated) text.

    Raises TrainConfigError when the teacher lacks a task or its label set differs.
    """
    path = Path(teacher_dir)
    teacher, tokenizer = load_teacher(path)
    teacher.to(device)
    wanted = {**labels, ENTITY: SENTIMENT_LABELS} if news is not None else labels
    for task, names in wanted.items():
        have = teacher.meta.labels.get(task)
        if have is None:
            raise TrainConfigError("teacher", f"{path} has no {task!r} head")
        if set(have) != set(names):
            raise TrainConfigError("teacher", f"{path} labels {task} as {have}, not {names}")
    data = encode(tokenizer, {"_": (texts, np.zeros(len(texts)))}, ["_"], max_length_tokens)
    outputs = predict_encoded_outputs(
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
        out[task] = outputs.probs[task][:, order].astype(np.float32)
    if news is not None:
        order = [list(teacher.meta.labels[ENTITY]).index(name) for name in wanted[ENTITY]]
        probs = _entity_pass(
            teacher,
            tokenizer,
            news,
            max_length_tokens=max_length_tokens,
            batch_size=batch_size,
            device=device,
            bf16=bf16,
        )
        out[ENTITY] = probs[:, order]
    logger.info("teacher %s: %d texts labelled for %s", path, len(texts), ", ".join(wanted))
    return out


def _entity_pass(
    teacher: MultiTaskModel,
    tokenizer: PreTrainedTokenizerBase,
    news: pd.DataFrame,
    *,
    max_length_tokens: int,
    batch_size: int,
    device: torch.device,
    bf16: bool,
) -> np.ndarray:
    """The teacher's entity probabilities per entity of ``news`` (NaN where not found)."""
    encoded = encode_news(tokenizer, news, [], max_length_tokens)
    found = predict_entities(
        teacher,
        encoded.data,
        batch_size=batch_size,
        pad_id=int(tokenizer.pad_token_id or 0),
        device=device,
        bf16=bf16,
    )
    flags = np.fromiter((f for row in encoded.found for f in row), dtype=bool)
    out = np.full((len(flags), found.shape[1]), np.nan, dtype=np.float32)
    out[flags] = found
    return out


def span_targets(per_entity: np.ndarray, found: Sequence[Sequence[bool]]) -> np.ndarray:
    """Per-entity soft targets (row then entity order, as :func:`teacher_pass` gives them) at
    the student's spans: one row per entity the student found, in its span order (found
    entities of each row, rows in order). Raises ValueError when the counts disagree."""
    flags = np.fromiter((f for row in found for f in row), dtype=bool)
    if len(flags) != len(per_entity):
        raise ValueError(f"entity soft targets: {len(per_entity)} rows for {len(flags)} entities")
    return per_entity[flags]


def ensemble_targets(
    teacher_dirs: Sequence[str | Path],
    texts: list[str],
    labels: Mapping[str, tuple[str, ...]],
    *,
    max_length_tokens: int,
    batch_size: int,
    device: torch.device,
    bf16: bool = False,
    news: pd.DataFrame | None = None,
) -> dict[str, np.ndarray]:
    """The mean of several teachers' probabilities (each as :func:`teacher_pass`). Blocking."""
    if not teacher_dirs:
        raise TrainConfigError("teacher", "no teacher directory given")
    total: dict[str, np.ndarray] = {}
    for path in teacher_dirs:
        probs = teacher_pass(
            path,
            texts,
            labels,
            max_length_tokens=max_length_tokens,
            batch_size=batch_size,
            device=device,
            bf16=bf16,
            news=news,
        )
        for task, values in probs.items():
            total[task] = total[task] + values if task in total else values
    return {task: (v / len(teacher_dirs)).astype(np.float32) for task, v in total.items()}


def distill_loss(
    logits: Mapping[str, torch.Tensor],
    soft: Mapping[str, torch.Tensor],
    temperature: float = 1.0,
) -> torch.Tensor:
    """Mean over (example, task) pairs of the cross-entropy between the teacher's probabilities
    and the student's softmax (KL divergence plus the teacher's constant entropy).

    At ``temperature`` T > 1 both sides are softened (the teacher's probabilities as
    ``p ** (1 / T)``, renormalised, which is its softmax at T; the student's logits divided by
    T) and the loss is scaled by T squared, so its gradients keep their size (Hinton et al.
    2015): the ranking of the wrong classes, not only the top one, then teaches."""
    total = next(iter(logits.values())).new_zeros((), dtype=torch.float32)
    count = 0
    for task, task_logits in logits.items():
        target = soft.get(task)
        if target is None:
            continue
        if temperature != 1.0:
            target = target.clamp_min(1e-12).pow(1.0 / temperature)
            target = target / target.sum(dim=-1, keepdim=True)
        log_probs = nn.functional.log_softmax(task_logits.float() / temperature, dim=-1)
        total = total - (target * log_probs).sum()
        count += int(target.shape[0])
    return total * temperature**2 / max(count, 1)


def entity_distill_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """Mean cross-entropy between the teacher's entity probabilities and the student's entity
    softmax over the spans the teacher found (rows of NaN skipped); None when there are none."""
    known = ~torch.isnan(target).any(dim=-1)
    if not bool(known.any()):
        return None
    log_probs = nn.functional.log_softmax(logits[known].float(), dim=-1)
    return -(target[known] * log_probs).sum(dim=-1).mean()


def batch_targets(
    soft: SoftTargets, index: np.ndarray, device: torch.device
) -> dict[str, torch.Tensor]:
    """The soft targets of one batch's examples (per-example tasks; not the entity spans)."""
    return {t: torch.from_numpy(v[index]).to(device) for t, v in soft.items() if t != ENTITY}


def batch_span_targets(
    soft: SoftTargets, span_starts: np.ndarray, index: np.ndarray, device: torch.device
) -> torch.Tensor | None:
    """The entity soft targets of one batch's spans, in :func:`collate_spans` order (None
    without entity targets or spans). ``span_starts[i]`` is example ``i``'s first span."""
    values = soft.get(ENTITY)
    if values is None:
        return None
    rows = [np.arange(span_starts[i], span_starts[i + 1]) for i in index]
    where = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    if not len(where):
        return None
    return torch.from_numpy(values[where]).to(device)


def check_aligned(soft: SoftTargets, data: Encoded) -> None:
    spans = sum(len(row) for row in data.spans or ())
    for task, values in soft.items():
        if task == ENTITY:
            if len(values) != spans:
                raise ValueError(f"entity soft targets: {len(values)} rows for {spans} spans")
        elif len(values) != len(data):
            raise ValueError(f"{task} soft targets: {len(values)} rows for {len(data)} examples")


__all__ = [
    "SoftTargets",
    "batch_span_targets",
    "batch_targets",
    "check_aligned",
    "distill_loss",
    "ensemble_targets",
    "entity_distill_loss",
    "load_teacher",
    "span_targets",
    "teacher_pass",
]
