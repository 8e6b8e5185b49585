"""Learning-rate schedule and wall-time budget arithmetic: pure functions of steps and seconds."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WarmupLinear:
    """Factor on the base learning rate: 0 -> 1 over ``warmup_steps`` (at most half the run),
    then linearly 1 -> 0 at ``total_steps``."""

    warmup_steps: int
    total_steps: int

    def factor(self, step: int) -> float:
        warmup = min(self.warmup_steps, self.total_steps // 2)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        span = max(self.total_steps - warmup, 1)
        return max(0.0, (self.total_steps - step) / span)


def planned_steps(n_examples: int, batch_size: int, epochs: float) -> tuple[int, int]:
    """``(steps_per_epoch, total_steps)`` for a run of ``epochs`` (fractions allowed)."""
    per_epoch = max(1, math.ceil(n_examples / batch_size))
    return per_epoch, max(1, math.ceil(per_epoch * epochs))


@dataclass(frozen=True, kw_only=True)
class BudgetProbe:
    """What has been measured so far in a time-capped run."""

    done_steps: int
    elapsed_sec: float
    sec_per_step: float
    sec_per_eval: float
    steps_per_eval: int


def fit_total_steps(
    probe: BudgetProbe, total_steps: int, budget_sec: float, margin: float = 0.93
) -> int:
    """The largest step count in ``[done_steps, total_steps]`` that, with its holdout
    evaluations and a final one, fits in ``budget_sec`` with ``margin`` to spare."""
    remaining = budget_sec - probe.elapsed_sec - probe.sec_per_eval
    per_step = probe.sec_per_step + probe.sec_per_eval / max(probe.steps_per_eval, 1)
    fit = probe.done_steps + int(max(remaining, 0.0) * margin / max(per_step, 1e-9))
    return max(probe.done_steps, min(total_steps, fit))
