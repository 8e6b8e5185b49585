"""The stages of a training run, read off its config: teachers, the labelling pass, the student.

A plain run is one stage, the student. With ``self_distill`` it is ``teachers`` fit stages (each
exported to its own directory under the run's), one labelling pass (the teachers' mean
probabilities for every training text, kept in a file), then the student, which learns from those
targets and the gold labels and is what the run exports. With ``teacher_model`` (an exported
model) it is that model's labelling pass, then the student. Every stage writes one artefact in the
run directory; ``--resume`` reuses a finished artefact and continues a stage that left a
checkpoint (pipelines.train). Pure: no torch, nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config import TrainConfig

TEACHER_DIR = "teacher"
LABELS_FILE = "teacher-labels.npz"


@dataclass(frozen=True, kw_only=True)
class FitStage:
    """One model fine-tuned by the loop and exported to ``out_dir``: a teacher or the student.

    ``max_minutes`` is the stage's wall-time budget (None: none); ``probe_init`` starts its
    heads as linear probes of the frozen encoder; ``score_tests`` scores the config's test files
    for the card (the student only: it is what the run is for).
    """

    name: str
    out_dir: Path
    base_model: str
    lr: float
    epochs: float
    max_minutes: float | None
    seed: int
    probe_init: bool
    score_tests: bool

    def to_json(self) -> dict[str, Any]:
        """What the card records and a checkpoint is checked against (no paths, no budget)."""
        return {
            "name": self.name,
            "base_model": self.base_model,
            "lr": self.lr,
            "epochs": self.epochs,
            "seed": self.seed,
            "probe_init": self.probe_init,
        }


@dataclass(frozen=True, kw_only=True)
class LabelStage:
    """The teachers' mean probabilities for every training text, kept in ``out_file``."""

    teacher_dirs: tuple[Path, ...]
    out_file: Path


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The stages in the order they run; ``labelling`` is None for a plain run."""

    teachers: tuple[FitStage, ...]
    labelling: LabelStage | None
    student: FitStage


def build_plan(config: TrainConfig, out_dir: Path) -> Plan:
    """The stages of ``config`` for a run exported to ``out_dir``."""
    student = FitStage(
        name="student",
        out_dir=out_dir,
        base_model=config.base_model,
        lr=config.lr,
        epochs=config.epochs,
        max_minutes=config.max_minutes,
        seed=config.seed,
        probe_init=False,
        score_tests=True,
    )
    if config.teacher_model is not None:  # an exported teacher: nothing to train before
        labelling = LabelStage(
            teacher_dirs=(config.path(config.teacher_model),), out_file=out_dir / LABELS_FILE
        )
        return Plan(teachers=(), labelling=labelling, student=student)
    if not config.self_distill:
        return Plan(teachers=(), labelling=None, student=student)
    teachers = tuple(_teacher(config, out_dir, index) for index in range(config.teachers))
    labelling = LabelStage(
        teacher_dirs=tuple(t.out_dir for t in teachers), out_file=out_dir / LABELS_FILE
    )
    return Plan(teachers=teachers, labelling=labelling, student=student)


def _teacher(config: TrainConfig, out_dir: Path, index: int) -> FitStage:
    name = TEACHER_DIR if index == 0 else f"{TEACHER_DIR}-{index + 1}"
    return FitStage(
        name=name,
        out_dir=out_dir / name,
        base_model=config.teacher_base_model or config.base_model,
        lr=config.teacher_lr or config.lr,
        epochs=config.teacher_epochs,
        max_minutes=config.teacher_max_minutes,
        seed=config.seed + index,
        probe_init=config.teacher_probe_init,
        score_tests=False,
    )


__all__ = ["LABELS_FILE", "FitStage", "LabelStage", "Plan", "build_plan"]
