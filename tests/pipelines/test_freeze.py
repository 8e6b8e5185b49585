from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from monitor.classify.model import build_model, load_model
from pipelines.config import load_config
from pipelines.errors import TrainConfigError
from pipelines.freeze import freeze_bottom
from pipelines.train import train
from tests.pipelines.conftest import toy_frames
from tests.pipelines.test_train import tiny_config

LABELS = {"sentiment": ("negative", "neutral", "positive")}


def trainable(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_freeze_bottom_stops_embeddings_and_the_bottom_layers(tiny_base: Path) -> None:
    model, _ = build_model(tiny_base, LABELS)
    everything = trainable(model)
    assert freeze_bottom(model, None) == 0
    assert trainable(model) == everything
    frozen = freeze_bottom(model, 1)
    left = trainable(model)
    assert frozen == sum(p.numel() for n, p in model.named_parameters() if n not in left)
    assert not any(n.startswith("encoder.embeddings.") for n in left)
    assert not any(n.startswith("encoder.encoder.layer.0.") for n in left)
    assert any(n.startswith("encoder.encoder.layer.1.") for n in left)  # the top layer trains
    assert {n for n in left if n.startswith("heads.")} == {n for n in everything if "heads." in n}


def test_freeze_zero_freezes_the_embeddings_alone(tiny_base: Path) -> None:
    model, _ = build_model(tiny_base, LABELS)
    freeze_bottom(model, 0)
    left = trainable(model)
    assert not any(n.startswith("encoder.embeddings.") for n in left)
    assert any(n.startswith("encoder.encoder.layer.0.") for n in left)


def test_more_layers_than_the_encoder_has_is_named(tiny_base: Path) -> None:
    model, _ = build_model(tiny_base, LABELS)
    with pytest.raises(TrainConfigError, match=r"freeze_layers.*has 2 layers, got 3"):
        freeze_bottom(model, 3)


def test_frozen_weights_come_out_of_training_unchanged(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, epochs=1, freeze_layers=1)
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    base = AutoModel.from_pretrained(tiny_base).state_dict()
    exported, _ = load_model(result.model_dir)
    state = exported.encoder.state_dict()
    for key in ("embeddings.word_embeddings.weight", "encoder.layer.0.output.dense.weight"):
        assert torch.equal(state[key], base[key])
    top = "encoder.layer.1.output.dense.weight"
    assert not torch.equal(state[top], base[top])  # the layer above them trained


def test_teacher_freeze_layers_applies_to_the_teachers_only(
    tiny_base: Path, tmp_path: Path
) -> None:
    config = tiny_config(
        tiny_base,
        epochs=1,
        self_distill=True,
        teacher_epochs=1,
        teacher_freeze_layers=2,
        keep_checkpoint=True,
    )
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    base = AutoModel.from_pretrained(tiny_base).state_dict()
    teacher, _ = load_model(tmp_path / "m" / "teacher")
    student, _ = load_model(result.model_dir)
    key = "encoder.layer.1.output.dense.weight"
    assert torch.equal(teacher.encoder.state_dict()[key], base[key])
    assert not torch.equal(student.encoder.state_dict()[key], base[key])
    card = json.loads((tmp_path / "m" / "teacher" / "model_card.json").read_text())
    assert card["training_config"]["freeze_layers"] == 2


def test_freeze_options_checked() -> None:
    with pytest.raises(TrainConfigError, match=r"freeze_layers.*must be >= 0"):
        load_config(None, freeze_layers=-1)
    with pytest.raises(TrainConfigError, match=r"teacher_freeze_layers.*must be >= 0"):
        load_config(None, teacher_freeze_layers=-2)
    with pytest.raises(TrainConfigError, match=r"freeze_layers.*lora_rank"):
        load_config(None, freeze_layers=2, lora_rank=4)
