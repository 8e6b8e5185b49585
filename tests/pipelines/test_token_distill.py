from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from monitor.classify.model import build_model, load_model, save_model
from pipelines.batching import encode
from pipelines.config import load_config
from pipelines.distill import teacher_pass
from pipelines.errors import TrainConfigError
from pipelines.token_distill import (
    TokenStates,
    TokenTeacher,
    aligned_rows,
    batch_token_targets,
    token_loss,
    token_states,
)
from pipelines.train import train
from tests.pipelines.conftest import toy_frames
from tests.pipelines.test_train import tiny_config

SENTIMENT = ("negative", "neutral", "positive")
TEXTS = ["Acme soars", "Fed holds rates steady", "$TSLA plunges 5%"]


def test_token_loss_counts_only_masked_tokens() -> None:
    target = torch.zeros((1, 3, 2))
    predicted = torch.tensor([[[1.0, 1.0], [3.0, 0.0], [9.0, 9.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the third token is padding
    # (1 + 1 + 9 + 0) over 2 tokens x 2 dimensions
    assert float(token_loss(predicted, target, mask)) == pytest.approx(11 / 4)
    assert float(token_loss(predicted, target, torch.zeros((1, 3)))) == 0.0


def test_targets_line_up_by_position_and_skip_mismatched_texts() -> None:
    values = np.arange(6 * 2, dtype=np.float16).reshape(6, 2)
    states = TokenStates(values, np.array([0, 2, 5, 6]))  # texts of 2, 3 and 1 tokens
    aligned = aligned_rows(states, np.array([2, 4, 1, 5]))  # the 4th has no teacher text
    assert aligned.tolist() == [True, False, True, False]
    target, mask = batch_token_targets(states, aligned, np.array([2, 0, 1]), 3, torch.device("cpu"))
    assert mask.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
    assert target[0, 0].tolist() == [10.0, 11.0]  # text 2's only token
    assert target[1, :2].flatten().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert float(target[2].abs().sum()) == 0.0


def _teacher_states(teacher_dir: Path, texts: list[str], batch_size: int) -> TokenStates:
    _, outputs = teacher_pass(
        teacher_dir,
        texts,
        {},
        max_length_tokens=24,
        batch_size=batch_size,
        device=torch.device("cpu"),
        tokens=True,
    )
    assert outputs.token_values is not None and outputs.token_offsets is not None
    return token_states(outputs.token_values, outputs.token_offsets)


def test_teacher_token_states_are_its_last_layer_standardised(
    tiny_base: Path, tmp_path: Path
) -> None:
    """The labelling pass gives the token vectors too, and the same probabilities as without."""
    teacher, tokenizer = build_model(tiny_base, {"sentiment": SENTIMENT}, max_length_tokens=24)
    teacher.eval()
    save_model(teacher, tokenizer, tmp_path / "teacher")
    labels = {"sentiment": SENTIMENT}
    cpu = torch.device("cpu")
    soft, outputs = teacher_pass(
        tmp_path / "teacher",
        TEXTS,
        labels,
        max_length_tokens=24,
        batch_size=2,
        device=cpu,
        tokens=True,
    )
    plain, _ = teacher_pass(
        tmp_path / "teacher", TEXTS, labels, max_length_tokens=24, batch_size=2, device=cpu
    )
    np.testing.assert_allclose(soft["sentiment"], plain["sentiment"], atol=1e-6)
    assert outputs.token_values is not None and outputs.token_offsets is not None
    states = token_states(outputs.token_values, outputs.token_offsets)
    lengths = [len(tokenizer(t)["input_ids"]) for t in TEXTS]
    assert states.lengths().tolist() == lengths
    values = states.values.astype(np.float32)
    np.testing.assert_allclose(values.mean(axis=0), 0.0, atol=1e-2)
    np.testing.assert_allclose(values.std(axis=0), 1.0, atol=1e-2)
    raw = []
    with torch.inference_mode():
        for text in TEXTS:
            enc = tokenizer(text, return_tensors="pt")
            raw.append(teacher.encoder(**enc).last_hidden_state[0].numpy())
    stacked = np.concatenate(raw)
    expected = (stacked - stacked.mean(axis=0)) / stacked.std(axis=0)
    np.testing.assert_allclose(values, expected, atol=2e-2)


def test_token_distillation_options_checked() -> None:
    with pytest.raises(TrainConfigError, match=r"token_distill_weight.*one teacher"):
        load_config(None, token_distill_weight=0.5)
    with pytest.raises(TrainConfigError, match=r"token_distill_weight.*one teacher"):
        load_config(None, token_distill_weight=0.5, teacher=("a", "b"))
    with pytest.raises(TrainConfigError, match=r"token_distill_weight.*augment_rate"):
        load_config(None, token_distill_weight=0.5, teacher="a", augment_rate=0.3)
    assert load_config(None, token_distill_weight=0.5, teacher="a").token_distill_weight == 0.5


def test_token_distillation_trains_a_map_the_export_leaves_out(
    tiny_base: Path, tmp_path: Path
) -> None:
    """The map from the student's tokens to the teacher's learns (its error falls well under
    that of an untrained map on the same student), lives in the checkpoints, and the export is
    the plain format."""
    config = tiny_config(
        tiny_base,
        epochs=3,
        self_distill=True,
        teacher_epochs=3,
        token_distill_weight=1.0,
        keep_checkpoint=True,
    )
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    checkpoint = torch.load(
        tmp_path / "m" / "checkpoint" / "checkpoint.pt", weights_only=False, map_location="cpu"
    )
    state = checkpoint["model"]
    assert {"token_proj.weight", "token_proj.bias"} <= set(state)
    student, tokenizer = load_model(result.model_dir)
    assert not any(k.startswith("token_proj") for k in student.state_dict())
    assert result.metrics["holdout"]["sentiment"]["accuracy"] > 0.6

    student.load_state_dict({k: v for k, v in state.items() if not k.startswith("token_")})
    student.eval()
    texts = toy_frames()["sentiment"]["text"].tolist()[:64]
    states = _teacher_states(tmp_path / "m" / "teacher", texts, batch_size=16)
    data = encode(tokenizer, {"_": (texts, np.zeros(len(texts)))}, ["_"], 24)
    aligned = aligned_rows(states, data.lengths())
    assert aligned.all()
    trained = torch.nn.Linear(*reversed(state["token_proj.weight"].shape))
    trained.load_state_dict(
        {"weight": state["token_proj.weight"], "bias": state["token_proj.bias"]}
    )
    torch.manual_seed(0)
    untrained = torch.nn.Linear(*reversed(state["token_proj.weight"].shape))
    enc = tokenizer(texts, padding=True, truncation=True, max_length=24, return_tensors="pt")
    with torch.inference_mode():
        hidden = student.encoder(**enc).last_hidden_state
        index = np.arange(len(texts))
        errors = [
            float(TokenTeacher(states, aligned, m).loss(hidden, index))
            for m in (trained, untrained)
        ]
    assert errors[0] < 0.8 * errors[1]


def test_token_distillation_covers_the_transfer_copies(tiny_base: Path, tmp_path: Path) -> None:
    """The copies join the training set after the teacher's pass over them: every row, copy or
    not, has the teacher's tokens to learn from."""
    config = tiny_config(
        tiny_base,
        epochs=1,
        self_distill=True,
        teacher_epochs=1,
        transfer_copies=1,
        token_distill_weight=1.0,
    )
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    assert result.steps > 0
