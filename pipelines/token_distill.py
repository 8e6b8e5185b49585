"""Token-level distillation: the student's last-layer token vectors, through a linear map that
trains with it and is left out of the export, learn to predict the teacher's last-layer token
vectors of the same text (standardised per dimension; the hidden-state loss of TinyBERT, Jiao
et al. 2020, on the last layer only).

The two encoders must cut a text into the same number of tokens for position ``i`` of one to
stand for position ``i`` of the other; MPNet's and MiniLM's tokenizers give the same wordpieces
on these tweets. A text where the counts differ is left out of this term (its other losses
stay), and the number left out is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenStates:
    """The teacher's token vectors of many texts, ragged: text ``i`` owns rows
    ``offsets[i]:offsets[i + 1]`` of ``values`` (float16, standardised per dimension)."""

    values: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def hidden(self) -> int:
        return int(self.values.shape[1])

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def token_states(values: np.ndarray, offsets: np.ndarray) -> TokenStates:
    """The teacher's last-layer token vectors (ragged, as :class:`TokenStates` lays them out,
    from :func:`pipelines.distill.teacher_pass`), each dimension standardised over all tokens
    and stored as float16. Standardises ``values`` in place."""
    mean = values.mean(axis=0, keepdims=True)
    std = np.maximum(values.std(axis=0, keepdims=True), 1e-6)
    values -= mean
    values /= std
    logger.info(
        "token distillation: %d texts, %d teacher token vectors", len(offsets) - 1, len(values)
    )
    return TokenStates(values.astype(np.float16), offsets)


def aligned_rows(states: TokenStates, student_lengths: np.ndarray) -> np.ndarray:
    """Per student example, whether the teacher's tokens line up with its own (same count);
    examples past the teacher's texts have none."""
    out = np.zeros(len(student_lengths), dtype=bool)
    n = min(len(states), len(student_lengths))
    out[:n] = states.lengths()[:n] == student_lengths[:n]
    left_out = n - int(out[:n].sum())
    if left_out:
        logger.info("token distillation: %d of %d texts tokenised otherwise, left out", left_out, n)
    return out


def batch_token_targets(
    states: TokenStates,
    aligned: np.ndarray,
    index: np.ndarray,
    width: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets ``[batch, width, hidden]`` (zero where padded) and a mask ``[batch, width]``
    (1 on the real tokens of aligned examples) for one batch of student examples."""
    target = np.zeros((len(index), width, states.hidden), dtype=np.float32)
    mask = np.zeros((len(index), width), dtype=np.float32)
    for row, i in enumerate(index):
        if aligned[i]:
            start, end = states.offsets[i], states.offsets[i + 1]
            target[row, : end - start] = states.values[start:end]
            mask[row, : end - start] = 1.0
    return torch.from_numpy(target).to(device), torch.from_numpy(mask).to(device)


def token_loss(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked tokens and every dimension (0 with none masked in)."""
    squared = (predicted.float() - target).pow(2).sum(dim=-1) * mask
    return squared.sum() / (mask.sum() * target.shape[-1]).clamp_min(1.0)


@dataclass(frozen=True)
class TokenTeacher:
    """What the training loop needs for the term: the teacher's vectors, which student examples
    line up with them, and the linear map from the student's width to the teacher's."""

    states: TokenStates
    aligned: np.ndarray
    projection: nn.Module

    def loss(self, hidden: torch.Tensor, index: np.ndarray) -> torch.Tensor:
        """The term for one batch: ``hidden`` is the student's last layer ``[batch, width,
        hidden]`` for the examples ``index``."""
        target, mask = batch_token_targets(
            self.states, self.aligned, index, int(hidden.shape[1]), hidden.device
        )
        return token_loss(self.projection(hidden), target, mask)


__all__ = [
    "TokenStates",
    "TokenTeacher",
    "aligned_rows",
    "batch_token_targets",
    "token_loss",
    "token_states",
]
