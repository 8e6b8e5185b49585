"""Fine-tune one multi-task model (shared encoder, topic and sentiment heads) and export it.

The programmatic entry point is :func:`train`; ``finmon train`` is a thin CLI over it.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from monitor.classify.base import resolve_base_model
from monitor.classify.model import CARD_FILE, MultiTaskModel, build_model, read_card
from pipelines.adapt import adapt_encoder, adapted_result
from pipelines.augment import EpochAugmenter, tokenizer_fn
from pipelines.batching import Encoded, encode, token_ids
from pipelines.calibrate import fit_temperature
from pipelines.checkpoint import CHECKPOINT_FILE, Checkpointer
from pipelines.config import TrainConfig
from pipelines.distill import FEATURES, ensemble_targets, standardise
from pipelines.errors import TrainConfigError
from pipelines.export import export_model, test_metrics, update_card
from pipelines.linear_teacher import linear_targets, mix_targets
from pipelines.loop import Holdout, LoopState, TrainLoop, restore
from pipelines.lora import apply_lora
from pipelines.precision import training_attention, use_bf16
from pipelines.prepare import TaskData, load_tasks
from pipelines.probe import init_heads_from_probe
from pipelines.schedule import planned_steps
from pipelines.token_distill import TokenStates, TokenTeacher, aligned_rows, token_states
from pipelines.transfer import concat, transfer_texts, unlabelled

logger = logging.getLogger(__name__)

TEACHER_DIR = "teacher"
CHECKPOINT_DIR = "checkpoint"
ADAPTED_DIR = "adapted"
# The training-only submodule that maps the student's pooled vector to the teacher's.
FEATURE_PROJ = "feature_proj"
TOKEN_PROJ = "token_proj"

# Options that may change between a run and its --resume without invalidating the checkpoint.
RESUMABLE = frozenset(
    {
        "max_minutes",
        "budget_probe_steps",
        "keep_checkpoint",
        "num_threads",
        "device",
        "eval_batch_size",
        "version",
        "extra",
    }
)


@dataclass(frozen=True)
class TrainResult:
    """Where the model went and how it scored (``metrics["holdout"]``, ``metrics["test"]``)."""

    model_dir: Path
    metrics: Mapping[str, Any]
    seconds: float
    steps: int
    stopped: str
    card: Mapping[str, Any] = field(default_factory=dict)


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    frames: Mapping[str, pd.DataFrame] | None = None,
    progress: bool = True,
    resume: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> TrainResult:
    """Train on ``frames`` (``{"sentiment": df, "topic": df}``, columns ``config.text_col`` /
    ``config.label_col``, labels as names, synonyms or ids) or on the config's files, then write
    the export format plus ``model_card.json`` to ``out_dir``.

    Blocking; uses ``config.num_threads`` CPU threads (torch default when None). Raises
    DataError, TrainConfigError, CheckpointError (on ``resume``) and ModelLoadError (base model).
    """
    config.check_model_dirs()
    if config.adapt_epochs > 0:
        return _from_adapted(
            config, Path(out_dir), frames=frames, progress=progress, resume=resume, clock=clock
        )
    if config.self_distill and config.teacher is None:
        return _self_distil(
            config, Path(out_dir), frames=frames, progress=progress, resume=resume, clock=clock
        )
    started, cpu_started = clock(), time.process_time()
    parts = build_run(config, frames)
    device, bf16, tasks = parts.device, parts.bf16, parts.tasks
    model, tokenizer, train_data = parts.model, parts.tokenizer, parts.train_data
    # Every training text once, in ``encode``'s order (tasks in turn), for teacher and augmenter.
    train_texts = [text for data in tasks.values() for text in data.train["text"].tolist()]
    holdouts = {t: _holdout(tokenizer, d, config) for t, d in tasks.items()}
    copies = transfer_texts(train_texts, config.transfer_copies, config.seed)
    soft, tokens = _teacher_targets(config, tasks, train_texts + copies, device, bf16)
    feature_proj = _feature_projection(model, soft, config, device)
    if copies:
        extra = unlabelled(token_ids(tokenizer, copies, config.max_length_tokens), list(tasks))
        train_data, train_texts = concat(train_data, extra), train_texts + copies
        logger.info("transfer set: %d perturbed copies labelled by the teachers", len(copies))
    token_teacher = _token_teacher(model, train_data, tokens, device)
    if config.probe_init and not resume:
        init_heads_from_probe(
            model,
            parts.train_data,
            pad_id=int(tokenizer.pad_token_id or 0),
            device=device,
            bf16=bf16,
            seed=config.seed,
        )
    optimizer = build_optimizer(model, config)
    checkpointer = Checkpointer(Path(out_dir) / CHECKPOINT_DIR, _fingerprint(config))
    state = initial_state(len(train_data), config)
    best: dict[str, torch.Tensor] | None = None
    average: dict[str, Any] | None = None
    if resume:
        state, best, average = _resume(checkpointer, model, optimizer)
    state.elapsed_sec += clock() - started  # the time budget covers loading and tokenising too
    loop = TrainLoop(
        model=model,
        optimizer=optimizer,
        config=config,
        train_data=train_data,
        holdouts=holdouts,
        class_weights=_class_weights(tasks, config, device),
        pad_id=int(tokenizer.pad_token_id or 0),
        device=device,
        state=state,
        checkpointer=checkpointer,
        clock=clock,
        progress=progress,
        soft_targets=soft,
        augmenter=_augmenter(tokenizer, train_texts, train_data, config),
        feature_proj=feature_proj,
        token_teacher=token_teacher,
    )
    loop.best = best
    if average is not None and loop.average is not None:
        loop.average.load_state_dict(average)
    with training_attention(model, device, bf16):
        restore(model, loop.run())
    seconds = clock() - started
    loop.cpu_sec = time.process_time() - cpu_started
    return _finish(
        loop,
        tokenizer=tokenizer,
        tasks=tasks,
        out_dir=out_dir,
        seconds=seconds,
        checkpointer=checkpointer,
    )


@dataclass(frozen=True)
class RunParts:
    """What a run trains: the seeded model on its device, its tokenizer, the encoded data."""

    device: torch.device
    bf16: bool
    tasks: Mapping[str, TaskData]
    model: MultiTaskModel
    tokenizer: Any
    train_data: Encoded


def build_run(config: TrainConfig, frames: Mapping[str, pd.DataFrame] | None) -> RunParts:
    """Seed, threads, device and precision; the data; the model (LoRA-wrapped when configured)
    on its device; the training texts tokenised. Blocking."""
    seed_everything(config.seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config)
    bf16 = use_bf16(config.precision, device)
    tasks = load_tasks(config, frames)
    model, tokenizer = build_model(
        resolve_base_model(config.model_source(config.base_model)),
        {t: d.spec.names for t, d in tasks.items()},
        pooling=config.pooling,
        max_length_tokens=config.max_length_tokens,
        dropout=config.dropout,
    )
    model = apply_lora(model, config)
    model.to(device)  # before the optimiser: fused AdamW needs its parameters on the device
    train_data = encode(
        tokenizer,
        {t: (d.train["text"].tolist(), d.train["label"].to_numpy()) for t, d in tasks.items()},
        list(tasks),
        config.max_length_tokens,
    )
    return RunParts(device, bf16, tasks, model, tokenizer, train_data)


def _from_adapted(
    config: TrainConfig,
    out_dir: Path,
    *,
    frames: Mapping[str, pd.DataFrame] | None,
    progress: bool,
    resume: bool,
    clock: Callable[[], float],
) -> TrainResult:
    """Task-adaptive pretraining into ``<out>/adapted`` (on resume, a finished one is reused),
    then the whole run, teachers included, from the adapted encoder. The card keeps the original
    ``base_model`` and training config and adds ``adapted`` (steps, time, masked-LM loss)."""
    started = clock()
    adapted_dir = out_dir / ADAPTED_DIR
    done = adapted_result(adapted_dir) if resume else None
    if done is None:
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        device = resolve_device(config)
        tasks = load_tasks(config, frames)  # the student's split: holdout texts stay unseen
        done = adapt_encoder(
            resolve_base_model(config.model_source(config.base_model)),
            [text for data in tasks.values() for text in data.train["text"].tolist()],
            adapted_dir,
            epochs=config.adapt_epochs,
            lr=config.adapt_lr,
            batch_size=config.batch_size,
            max_length_tokens=config.max_length_tokens,
            max_minutes=config.adapt_max_minutes,
            seed=config.seed,
            device=device,
            bf16=use_bf16(config.precision, device),
            progress=progress,
            clock=clock,
        )
    else:
        logger.info("resume: adapted encoder already at %s", adapted_dir)
    inner = replace(config, base_model=str(adapted_dir.resolve()), adapt_epochs=0.0)
    # Self-distillation resumes each part on its own; a plain run needs its checkpoint.
    staged = config.self_distill and config.teacher is None
    checkpoint = (out_dir / CHECKPOINT_DIR / CHECKPOINT_FILE).is_file()
    resume_inner = resume and (staged or checkpoint)
    result = train(
        inner, out_dir, frames=frames, progress=progress, resume=resume_inner, clock=clock
    )
    seconds = clock() - started
    card = update_card(
        out_dir,
        base_model=config.base_model,
        training_config=config.to_json(),
        adapted=asdict(done),
        total_seconds=round(seconds, 1),
    )
    if not config.keep_checkpoint:
        shutil.rmtree(adapted_dir, ignore_errors=True)
    return replace(result, seconds=seconds, card=card)


def _self_distil(
    config: TrainConfig,
    out_dir: Path,
    *,
    frames: Mapping[str, pd.DataFrame] | None,
    progress: bool,
    resume: bool,
    clock: Callable[[], float],
) -> TrainResult:
    """Born-again training: ``config.teachers`` teachers with this config (seeds ``seed``,
    ``seed + 1``, ...) under ``<out>/teacher``, ``<out>/teacher-2``, ..., then a student of the
    same size distilled from their mean probabilities into ``out_dir``. Teachers are removed
    afterwards unless ``keep_checkpoint``; their figures stay in the student's card (``teacher``:
    the first, ``teachers``: all of them when there are several)."""
    started = clock()
    teacher_dirs = [out_dir / _teacher_name(k) for k in range(config.teachers)]
    summaries = [
        _teacher(config, k, path, frames=frames, progress=progress, resume=resume, clock=clock)
        for k, path in enumerate(teacher_dirs)
    ]
    resolved = tuple(str(path.resolve()) for path in teacher_dirs)
    student = replace(config, teacher=resolved[0] if len(resolved) == 1 else resolved)
    # A run stopped right after the teachers has no student checkpoint yet: start the student.
    resume_student = resume and (out_dir / CHECKPOINT_DIR / CHECKPOINT_FILE).is_file()
    result = train(
        student, out_dir, frames=frames, progress=progress, resume=resume_student, clock=clock
    )
    seconds = clock() - started
    several = {"teachers": summaries} if len(summaries) > 1 else {}
    card = update_card(out_dir, teacher=summaries[0], **several, total_seconds=round(seconds, 1))
    if not config.keep_checkpoint:
        for path in teacher_dirs:
            shutil.rmtree(path, ignore_errors=True)
    return replace(result, seconds=seconds, card=card)


def _teacher_name(index: int) -> str:
    return TEACHER_DIR if index == 0 else f"{TEACHER_DIR}-{index + 1}"


def _teacher(
    config: TrainConfig,
    index: int,
    teacher_dir: Path,
    *,
    frames: Mapping[str, pd.DataFrame] | None,
    progress: bool,
    resume: bool,
    clock: Callable[[], float],
) -> dict[str, Any]:
    """Train (or, on resume, reuse) teacher ``index``; its metrics and run summary."""
    if resume and (teacher_dir / CARD_FILE).is_file():
        logger.info("resume: teacher already exported at %s", teacher_dir)
        card = read_card(teacher_dir)
    else:
        teacher_probe = config.teacher_probe_init
        teacher_config = replace(
            config,
            self_distill=False,
            teachers=1,
            linear_teacher={},  # the teachers learn from gold labels alone
            transfer_copies=0,
            feature_distill_weight=0.0,
            token_distill_weight=0.0,
            base_model=config.teacher_base_model or config.base_model,
            lr=config.teacher_lr or config.lr,
            probe_init=config.probe_init if teacher_probe is None else teacher_probe,
            epochs=config.teacher_epochs,
            max_minutes=config.teacher_max_minutes,
            seed=config.seed + index,
            # Every teacher holds out the student's holdout: none of them trains on it.
            split_seed=config.seed if config.split_seed is None else config.split_seed,
            # The exported student is what the run is for: its teachers do not spend the
            # budget on the test files (2 minutes for an MPNet teacher here); `finmon evaluate`
            # scores a teacher kept with keep_checkpoint.
            sentiment_test=None,
            topic_test=None,
        )
        logger.info("self-distillation: training teacher %d into %s", index + 1, teacher_dir)
        # Resume a teacher only where it left a checkpoint (a later teacher may not have started).
        started = (teacher_dir / CHECKPOINT_DIR / CHECKPOINT_FILE).is_file()
        card = dict(
            train(
                teacher_config,
                teacher_dir,
                frames=frames,
                progress=progress,
                resume=resume and started,
                clock=clock,
            ).card
        )
    run = {k: v for k, v in card["run"].items() if k != "history"}
    return {"base_model": card.get("base_model"), "metrics": card["metrics"], "run": run}


def _finish(
    loop: TrainLoop,
    *,
    tokenizer: Any,
    tasks: Mapping[str, TaskData],
    out_dir: str | Path,
    seconds: float,
    checkpointer: Checkpointer,
) -> TrainResult:
    """Score the test files, export the model and card, drop the checkpoint."""
    model, config, device, state = loop.model, loop.config, loop.device, loop.state
    best = next((h for h in state.history if h["step"] == state.best_step), state.history[-1])
    metrics: dict[str, Any] = {"holdout": best["holdout"], "holdout_score": best["score"]}
    if config.calibrate:
        temperatures = _fit_temperatures(loop)
        model.meta = replace(model.meta, temperatures=temperatures)
        metrics["temperatures"] = temperatures
        logger.info("calibration temperatures (holdout): %s", temperatures)
    metrics["test"] = test_metrics(model, tokenizer, tasks, config, device)
    run = {
        "seconds": round(seconds, 1),
        "cpu_sec": round(loop.cpu_sec, 1),
        "steps": state.step,
        "best_step": state.best_step,
        "epochs": round(state.step / loop.per_epoch, 3),
        "stopped": state.stopped,
        "device": str(device),
        "precision": "bf16" if loop.bf16 else "fp32",
        "threads": torch.get_num_threads(),
        "history": state.history,
    }
    card = export_model(
        model, tokenizer, tasks=tasks, config=config, out_dir=out_dir, metrics=metrics, run=run
    )
    if not config.keep_checkpoint:
        checkpointer.remove()
    logger.info("exported %s after %.0f s (%s)", out_dir, seconds, state.stopped)
    return TrainResult(Path(out_dir), metrics, seconds, state.step, state.stopped, card)


def _fit_temperatures(loop: TrainLoop) -> dict[str, float]:
    """One softmax temperature per task, fitted on that task's holdout (never the test sets)."""
    temperatures = {}
    for task, holdout in loop.holdouts.items():
        if len(holdout.data):
            probs = loop.best_holdout_probs.get(task)
            if probs is None:  # resumed after the best state was scored
                probs = loop.holdout_probs(task, holdout)
            temperatures[task] = fit_temperature(probs, holdout.data.labels[task])
    return temperatures


def _teacher_targets(
    config: TrainConfig,
    tasks: Mapping[str, TaskData],
    texts: list[str],
    device: torch.device,
    bf16: bool,
) -> tuple[dict[str, np.ndarray] | None, TokenStates | None]:
    """The teachers' mean probabilities for every text of ``texts`` (the training texts, then any
    transfer copies; the linear teacher, which excludes copies, mixed in where configured), or
    None without any teacher; and, for token distillation, the one teacher's token vectors of
    the same texts, from the same pass."""
    soft, tokens = None, None
    if config.teacher is not None:
        soft, outputs = ensemble_targets(
            config.teacher_dirs(),
            texts,
            {t: d.spec.names for t, d in tasks.items()},
            max_length_tokens=config.max_length_tokens,
            batch_size=config.eval_batch_size,
            device=device,
            bf16=bf16,
            features=config.feature_distill_weight > 0,
            tokens=config.token_distill_weight > 0,  # one teacher: the config allows no more
        )
        if outputs.token_values is not None and outputs.token_offsets is not None:
            tokens = token_states(outputs.token_values, outputs.token_offsets)
        if FEATURES in soft:
            soft[FEATURES] = standardise(soft[FEATURES])
    if not config.linear_teacher:
        return soft, tokens
    missing = sorted(set(config.linear_teacher) - set(tasks))
    if missing:
        raise TrainConfigError("linear_teacher", f"no {missing[0]} training data to fit on")
    linear = linear_targets(tasks, config.linear_teacher, config.seed)
    return mix_targets(soft, linear, config.linear_teacher), tokens


def _feature_projection(
    model: MultiTaskModel,
    soft: Mapping[str, np.ndarray] | None,
    config: TrainConfig,
    device: torch.device,
) -> torch.nn.Linear | None:
    """The linear map from the student's pooled vector to the teacher's, for feature
    distillation; registered on the model (``FEATURE_PROJ``) so that checkpoints hold it and
    the optimiser gives it the heads' rate. The export leaves it out (encoder and heads only)."""
    if soft is None or FEATURES not in soft:
        return None
    projection = torch.nn.Linear(int(model.encoder.config.hidden_size), soft[FEATURES].shape[1])
    model.add_module(FEATURE_PROJ, projection.to(device))
    return projection


def _token_teacher(
    model: MultiTaskModel,
    train_data: Encoded,
    states: TokenStates | None,
    device: torch.device,
) -> TokenTeacher | None:
    """The teacher's token vectors of the training texts (then any transfer copies, in
    ``train_data``'s order) and the map from the student's width to the teacher's, registered on
    the model (``TOKEN_PROJ``) as :func:`_feature_projection` registers its own; None when the
    term is off."""
    if states is None:
        return None
    projection = torch.nn.Linear(int(model.encoder.config.hidden_size), states.hidden)
    model.add_module(TOKEN_PROJ, projection.to(device))
    return TokenTeacher(states, aligned_rows(states, train_data.lengths()), projection)


def _augmenter(
    tokenizer: Any, texts: list[str], data: Encoded, config: TrainConfig
) -> EpochAugmenter | None:
    if config.augment_rate <= 0:
        return None
    return EpochAugmenter(
        data,
        texts,
        tokenizer_fn(tokenizer, config.max_length_tokens),
        rate=config.augment_rate,
        seed=config.seed,
    )


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(config: TrainConfig) -> torch.device:
    """``config.device``, with ``auto`` meaning CUDA when present."""
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def _holdout(tokenizer: Any, data: TaskData, config: TrainConfig) -> Holdout:
    part = {data.task: (data.holdout["text"].tolist(), data.holdout["label"].to_numpy())}
    encoded = encode(tokenizer, part, [data.task], config.max_length_tokens)
    return Holdout(encoded, data.spec.names)


def build_optimizer(model: MultiTaskModel, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and LayerNorm; heads at ``lr * head_lr_multiplier``."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            is_head = name.startswith(("heads.", f"{FEATURE_PROJ}.", f"{TOKEN_PROJ}."))
            decay = param.ndim > 1 and "LayerNorm" not in name
            groups.setdefault((is_head, decay), []).append(param)
    param_groups = [
        {
            "params": params,
            "lr": config.lr * (config.head_lr_multiplier if head else 1.0),
            "weight_decay": config.weight_decay if decay else 0.0,
        }
        for (head, decay), params in groups.items()
    ]
    # The fused kernel made the optimiser step ~6x cheaper on CPU (a quarter of each step).
    return torch.optim.AdamW(param_groups, lr=config.lr, fused=True)


def _class_weights(
    tasks: Mapping[str, TaskData], config: TrainConfig, device: torch.device
) -> dict[str, torch.Tensor | None]:
    """Inverse-frequency weights, normalised to mean 1 over present classes, when enabled."""
    out: dict[str, torch.Tensor | None] = {}
    for task, data in tasks.items():
        if not config.class_weights:
            out[task] = None
            continue
        counts = np.bincount(data.train["label"].to_numpy(), minlength=len(data.spec.names))
        weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
        weights = weights / weights[counts > 0].mean()
        out[task] = torch.tensor(weights, dtype=torch.float32, device=device)
    return out


def initial_state(n_examples: int, config: TrainConfig) -> LoopState:
    """Step counters for a fresh run: ``epochs`` worth of steps, warmup included."""
    _, total = planned_steps(n_examples, config.batch_size, config.epochs)
    return LoopState(
        planned_steps=total, total_steps=total, warmup_steps=int(total * config.warmup_fraction)
    )


def _fingerprint(config: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in config.to_json().items() if k not in RESUMABLE}


def _resume(
    checkpointer: Checkpointer, model: MultiTaskModel, optimizer: torch.optim.Optimizer
) -> tuple[LoopState, dict[str, torch.Tensor] | None, dict[str, Any] | None]:
    payload = checkpointer.load()
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["torch_rng"])
    state = LoopState(**payload["state"])
    state.stopped = ""
    state.total_steps = state.planned_steps  # a new time budget, if any, is fitted afresh
    logger.info("resumed at step %d of %d", state.step, state.total_steps)
    return state, payload["best"], payload.get("average")


__all__ = ["Encoded", "TrainConfig", "TrainResult", "train"]
