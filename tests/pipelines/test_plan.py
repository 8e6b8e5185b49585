from __future__ import annotations

from pathlib import Path

from pipelines.config import TrainConfig
from pipelines.plan import LABELS_FILE, build_plan


def test_a_plain_run_is_the_student_alone(tmp_path: Path) -> None:
    plan = build_plan(TrainConfig(lr=1e-3, epochs=2, max_minutes=5), tmp_path)
    assert plan.teachers == () and plan.labelling is None
    student = plan.student
    assert (student.out_dir, student.lr, student.epochs, student.max_minutes) == (
        tmp_path,
        1e-3,
        2,
        5,
    )
    assert student.score_tests and not student.probe_init


def test_self_distillation_lists_teachers_labelling_and_student(tmp_path: Path) -> None:
    config = TrainConfig(
        self_distill=True,
        teachers=2,
        seed=13,
        lr=8e-5,
        teacher_lr=5e-5,
        teacher_epochs=5,
        teacher_max_minutes=17,
        teacher_base_model="../models/all-mpnet-base-v2",
        teacher_probe_init=True,
        max_minutes=25,
    )
    plan = build_plan(config, tmp_path)
    assert [t.name for t in plan.teachers] == ["teacher", "teacher-2"]
    assert [t.out_dir for t in plan.teachers] == [tmp_path / "teacher", tmp_path / "teacher-2"]
    assert [t.seed for t in plan.teachers] == [13, 14]
    for teacher in plan.teachers:
        assert (teacher.lr, teacher.epochs, teacher.max_minutes) == (5e-5, 5, 17)
        assert teacher.base_model == "../models/all-mpnet-base-v2"
        assert teacher.probe_init and not teacher.score_tests
    assert plan.labelling is not None
    assert plan.labelling.teacher_dirs == (tmp_path / "teacher", tmp_path / "teacher-2")
    assert plan.labelling.out_file == tmp_path / LABELS_FILE
    student = plan.student
    assert (student.lr, student.max_minutes, student.seed) == (8e-5, 25, 13)
    assert student.base_model == config.base_model and not student.probe_init


def test_teachers_default_to_the_students_encoder_and_rate(tmp_path: Path) -> None:
    plan = build_plan(TrainConfig(self_distill=True, lr=2e-4), tmp_path)
    (teacher,) = plan.teachers
    assert (teacher.base_model, teacher.lr) == (plan.student.base_model, 2e-4)


def test_an_exported_teacher_is_a_labelling_pass_and_no_teacher_stage(tmp_path: Path) -> None:
    config = TrainConfig(teacher_model="runs/mpnet", data_root=str(tmp_path / "configs"))
    plan = build_plan(config, tmp_path / "out")
    assert plan.teachers == ()
    assert plan.labelling is not None
    assert plan.labelling.teacher_dirs == (tmp_path / "configs" / "runs" / "mpnet",)
    assert plan.labelling.out_file == tmp_path / "out" / LABELS_FILE
    assert plan.student.out_dir == tmp_path / "out"
