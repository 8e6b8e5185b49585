"""The optimisation loop: masked multi-task loss, AdamW steps, holdout scoring, early stopping.

One object owns the model during training. Holdout scores select the exported state; the test
sets never reach this module. Time comes from an injected clock.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from monitor.classify.model import ENTITY, MultiTaskModel
from pipelines.batching import IGNORE, Encoded, collate, epoch_batches
from pipelines.checkpoint import Checkpointer
from pipelines.config import TrainConfig
from pipelines.distill import (
    SoftTargets,
    batch_span_targets,
    batch_targets,
    check_aligned,
    distill_loss,
    entity_distill_loss,
)
from pipelines.entities import collate_spans, predict_entities
from pipelines.plan import FitStage
from pipelines.precision import autocast, use_bf16
from pipelines.predict import predict_encoded
from pipelines.schedule import BudgetProbe, WarmupLinear, fit_total_steps
from pipelines.scoring import confusion, report

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
# Seconds kept free at the end of a time-capped run for the export and the test-set scoring.
EXPORT_RESERVE_SEC = 5.0


@dataclass
class LoopState:
    """Progress that a checkpoint restores: step counters, best holdout score, history.

    ``planned_steps`` comes from ``epochs``; ``total_steps`` is where the linear decay ends, which
    a time budget may move (never past ``planned_steps``) as step times are measured.
    """

    step: int = 0
    planned_steps: int = 0
    total_steps: int = 0
    warmup_steps: int = 0
    best_score: float = -1.0
    best_step: int = 0
    evals_since_best: int = 0
    elapsed_sec: float = 0.0
    stopped: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Holdout:
    """One task's holdout, already encoded (labels for that task only). ``head`` is the head
    that scores it (None: the holdout's own key); ``truth`` the labels it is scored against
    (None: ``data.labels`` of that head; the entity head's are per span)."""

    data: Encoded
    names: tuple[str, ...]
    head: str | None = None
    truth: np.ndarray | None = None

    def labels(self, key: str) -> np.ndarray:
        return self.truth if self.truth is not None else self.data.labels[self.head or key]


@dataclass(frozen=True)
class LoopData:
    """What a stage trains on: the encoded training examples, each task's holdout, the pad id,
    and the teachers' soft targets of the training examples (the student of a distilled run)."""

    train: Encoded
    holdouts: Mapping[str, Holdout]
    pad_id: int
    targets: SoftTargets | None = None
    # What the news file gave (pipelines.news), for the model card; empty without one.
    news_stats: Mapping[str, Any] = field(default_factory=dict)
    # Per news training row, whether each of its entities was found (pipelines.news).
    entity_found: tuple[tuple[bool, ...], ...] = ()


def masked_loss(
    logits: Mapping[str, torch.Tensor],
    labels: Mapping[str, torch.Tensor],
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Summed cross-entropy over every (example, task) pair that has a label, divided by their
    count; tasks an example lacks (label ``IGNORE``) contribute nothing."""
    total = next(iter(logits.values())).new_zeros(())
    count = 0
    for task, task_logits in logits.items():
        target = labels[task]
        mask = target != IGNORE
        if mask.any():
            total = total + nn.functional.cross_entropy(
                task_logits[mask].float(),
                target[mask],
                reduction="sum",
                label_smoothing=label_smoothing,
            )
            count += int(mask.sum())
    return total / max(count, 1)


class TrainLoop:
    """Runs steps until the planned total, early stopping, or the time budget."""

    def __init__(
        self,
        *,
        model: MultiTaskModel,
        optimizer: torch.optim.Optimizer,
        config: TrainConfig,
        stage: FitStage,
        data: LoopData,
        state: LoopState,
        checkpointer: Checkpointer | None,
        clock: Callable[[], float],
        progress: bool,
    ) -> None:
        if data.targets is not None:
            check_aligned(data.targets, data.train)
        self.model = model
        self.optimizer = optimizer
        self.config = config
        self.stage = stage
        self.data = data.train
        self.holdouts = data.holdouts
        self.soft = data.targets
        self.pad_id = data.pad_id
        self.device = next(model.parameters()).device
        self.bf16 = use_bf16(config.precision, self.device)
        self.state = state
        self.checkpointer = checkpointer
        self.clock = clock
        self.progress = progress
        self.best: StateDict | None = None
        # The holdout probabilities of the best state, as scored: temperature fitting reads them
        # instead of a second pass (38 s for an MPNet teacher here). Empty after a resume.
        self.best_holdout_probs: dict[str, np.ndarray] = {}
        self.per_epoch = max(1, -(-len(self.data) // config.batch_size))
        self.eval_every = max(1, round(self.per_epoch / config.evals_per_epoch))
        self._lengths = self.data.lengths()
        counts = [len(row) for row in self.data.spans or ()]
        self._span_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._epoch_cache: tuple[int, list[np.ndarray]] | None = None
        self._base_lrs = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
        for group, base in zip(optimizer.param_groups, self._base_lrs, strict=True):
            group["initial_lr"] = base
        self._eval_sec = 0.0
        self._loss_sum, self._loss_count = 0.0, 0
        self.cpu_sec = 0.0  # process CPU time of the run, set by the caller for the card

    def run(self) -> StateDict:
        """Train and return the best holdout state (CPU tensors). Blocking."""
        start, start_step = self.clock(), self.state.step
        bar = tqdm(
            total=self.state.total_steps,
            initial=self.state.step,
            disable=not self.progress,
            desc="train",
            unit="step",
            dynamic_ncols=True,
        )
        running: float | None = None
        self._eval_sec = 0.0
        self.model.train()
        while self.state.step < self.state.total_steps and not self.state.stopped:
            loss = self.step()
            running = loss if running is None else 0.98 * running + 0.02 * loss
            self._loss_sum, self._loss_count = self._loss_sum + loss, self._loss_count + 1
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
            elapsed = self.state.elapsed_sec + self.clock() - start
            if self._eval_due():
                eval_start = self.clock()
                self._evaluate(elapsed)
                self._eval_sec += self.clock() - eval_start
            self._fit_budget(start, start_step, bar)
        bar.close()
        self.state.elapsed_sec += self.clock() - start
        if not self.state.history or self.state.history[-1]["step"] != self.state.step:
            self._evaluate(self.state.elapsed_sec)
        if not self.state.stopped and self.state.total_steps < self.state.planned_steps:
            self.state.stopped = (
                f"time budget of {self.stage.max_minutes} min: schedule ended "
                f"at step {self.state.total_steps} of {self.state.planned_steps}"
            )
        self.state.stopped = self.state.stopped or "planned steps done"
        if self.best is None:
            self.best = _cpu_state(self.model)
        return self.best

    def _batches(self, epoch: int) -> list[np.ndarray]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            self._epoch_cache = (
                epoch,
                epoch_batches(self._lengths, self.config.batch_size, self.stage.seed + epoch),
            )
        return self._epoch_cache[1]

    def step(self) -> float:
        """One optimiser step on the next batch; returns its loss."""
        epoch, index = divmod(self.state.step, self.per_epoch)
        batch = self._batches(epoch)[index]
        inputs, labels = collate(self.data, batch, self.pad_id, self.device)
        schedule = WarmupLinear(self.state.warmup_steps, self.state.total_steps)
        for group, base in zip(self.optimizer.param_groups, self._base_lrs, strict=True):
            group["lr"] = base * schedule.factor(self.state.step)
        entity, entity_taught = None, None
        with autocast(self.device, self.bf16):
            if self.data.spans is None:
                logits = self.model.logits(self.model.features(**inputs))
            else:
                hidden = self.model.encoder(**inputs).last_hidden_state
                logits = self.model.logits(self.model.pool(hidden, inputs["attention_mask"]))
                entity, entity_taught = self._entity_loss(batch, hidden, inputs["attention_mask"])
        loss = masked_loss(logits, labels, self.config.label_smoothing)
        if entity is not None:
            loss = loss + self.config.entity_weight * entity
        if self.soft is not None:
            weight = self.config.distill_weight
            targets = batch_targets(self.soft, batch, self.device)
            taught = distill_loss(logits, targets, self.config.distill_temperature)
            if entity_taught is not None:
                taught = taught + self.config.entity_weight * entity_taught
            loss = (1.0 - weight) * loss + weight * taught
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
        self.optimizer.step()
        self.state.step += 1
        return float(loss.detach())

    def _entity_loss(
        self, batch: np.ndarray, hidden: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Mean cross-entropy of the entity head over the batch's spans against the gold labels
        and, with entity soft targets, against the teacher's (None where there is nothing)."""
        table, targets = collate_spans(self.data, batch, self.device)
        if not len(targets):
            return None, None
        logits = self.model.entity_logits(hidden, mask, table)
        gold = nn.functional.cross_entropy(
            logits.float(), targets, label_smoothing=self.config.label_smoothing
        )
        if self.soft is None:
            return gold, None
        soft = batch_span_targets(self.soft, self._span_starts, batch, self.device)
        return gold, None if soft is None else entity_distill_loss(logits, soft)

    def _eval_due(self) -> bool:
        step = self.state.step
        return step % self.eval_every == 0 or step == self.state.total_steps

    def _evaluate(self, elapsed_sec: float) -> None:
        self._score_and_select(elapsed_sec)
        if self.checkpointer is not None:
            snapshot = {**self.state.__dict__, "elapsed_sec": elapsed_sec}
            self.checkpointer.save(self.model, self.optimizer, snapshot, self.best)

    def _score_and_select(self, elapsed_sec: float) -> None:
        holdouts = self.holdouts.items()
        probs = {task: self.holdout_probs(task, h) for task, h in holdouts if len(h.data)}
        scores = {task: _score(task, probs.get(task), h) for task, h in holdouts}
        score = float(np.mean([s["macro_f1"] for s in scores.values()])) if scores else 0.0
        train_loss = self._loss_sum / self._loss_count if self._loss_count else None
        self._loss_sum, self._loss_count = 0.0, 0
        record = {
            "step": self.state.step,
            "epoch": round(self.state.step / self.per_epoch, 3),
            "elapsed_sec": round(elapsed_sec, 1),
            "train_loss": train_loss,
            "holdout": scores,
            "score": score,
        }
        self.state.history.append(record)
        if score > self.state.best_score:
            self.state.best_score, self.state.best_step = score, self.state.step
            self.state.evals_since_best = 0
            self.best = _cpu_state(self.model)
            self.best_holdout_probs = probs
        else:
            self.state.evals_since_best += 1
            if self.state.evals_since_best >= self.config.patience_evals:
                self.state.stopped = (
                    f"early stop: no holdout gain in {self.config.patience_evals} evals"
                )
        logger.info(
            "step %d: holdout %s (best %.4f at %d)",
            self.state.step,
            {t: round(s["macro_f1"], 4) for t, s in scores.items()},
            self.state.best_score,
            self.state.best_step,
        )

    def holdout_probs(self, task: str, holdout: Holdout) -> np.ndarray:
        """The model's current probabilities for one task's holdout."""
        if holdout.head == ENTITY:
            return predict_entities(
                self.model,
                holdout.data,
                batch_size=self.config.eval_batch_size,
                pad_id=self.pad_id,
                device=self.device,
                bf16=self.bf16,
            )
        return predict_encoded(
            self.model,
            holdout.data,
            holdout.head or task,
            batch_size=self.config.eval_batch_size,
            pad_id=self.pad_id,
            device=self.device,
            bf16=self.bf16,
        )

    def _fit_budget(self, start: float, start_step: int, bar: Any) -> None:
        if self.stage.max_minutes is None:
            return
        budget = self.stage.max_minutes * 60.0
        elapsed = self.state.elapsed_sec + self.clock() - start
        done = self.state.step - start_step
        evals = sum(1 for h in self.state.history if h["step"] > start_step)
        sec_per_step = max(self.clock() - start - self._eval_sec, 0.0) / max(done, 1)
        sec_per_eval = self._eval_sec / evals if evals else self._guess_eval_sec(sec_per_step)
        if elapsed + sec_per_eval + EXPORT_RESERVE_SEC >= budget:
            self.state.stopped = f"time budget of {self.stage.max_minutes} min reached"
            return
        if done < self.config.budget_probe_steps or (done % self.config.budget_probe_steps):
            return
        probe = BudgetProbe(
            done_steps=self.state.step,
            elapsed_sec=elapsed + EXPORT_RESERVE_SEC,
            sec_per_step=sec_per_step,
            sec_per_eval=sec_per_eval,
            steps_per_eval=self.eval_every,
        )
        fitted = fit_total_steps(probe, self.state.planned_steps, budget)
        if abs(fitted - self.state.total_steps) > self.config.budget_probe_steps:
            logger.info(
                "time budget: run now ends at step %d (planned %d)",
                fitted,
                self.state.planned_steps,
            )
            self.state.total_steps = fitted
            bar.total = fitted
            bar.refresh()

    def _guess_eval_sec(self, sec_per_step: float) -> float:
        # Before the first holdout score: inference costs about a third of a training step per item.
        items = sum(len(h.data) for h in self.holdouts.values())
        return sec_per_step * items / self.config.batch_size / 3.0


def _score(task: str, probs: np.ndarray | None, holdout: Holdout) -> dict[str, float]:
    """Accuracy and macro-F1 of one task's holdout probabilities (zeros for an empty holdout)."""
    if probs is None:
        return {"accuracy": 0.0, "macro_f1": 0.0}
    truth = holdout.labels(task)
    rep = report(confusion(truth, probs.argmax(axis=1), len(holdout.names)), holdout.names)
    return {"accuracy": rep.accuracy, "macro_f1": rep.macro_f1}


def _cpu_state(model: nn.Module) -> StateDict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def restore(model: nn.Module, state: StateDict) -> None:
    model.load_state_dict(copy.copy(state))


__all__: Sequence[str] = ["Holdout", "LoopData", "LoopState", "TrainLoop", "masked_loss", "restore"]
