from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from pipelines.ema import WeightAverage
from pipelines.errors import TrainConfigError
from pipelines.train import train
from tests.pipelines.conftest import toy_frames
from tests.pipelines.test_train import fake_clock, tiny_config


def _model(value: float) -> nn.Linear:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(value)
    return model


def test_the_average_follows_the_weights_with_a_ramped_decay() -> None:
    model = _model(0.0)
    average = WeightAverage(model, decay=0.9)
    expected = 0.0
    for value in (1.0, 2.0, 3.0, 4.0, 5.0):
        with torch.no_grad():
            model.weight.fill_(value)
        decay = min(0.9, (2 + average.updates) / (11 + average.updates))
        average.update()
        expected = decay * expected + (1 - decay) * value
        assert average.shadow[0].item() == pytest.approx(expected, rel=1e-6)
    assert average.current_decay() == pytest.approx(min(0.9, 6 / 15))


def test_applied_swaps_the_average_in_and_the_weights_back() -> None:
    model = _model(0.0)
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(10.0)
    average.update()
    inside = average.shadow[0].item()
    assert 0.0 < inside < 10.0
    with average.applied():
        assert model.weight.item() == pytest.approx(inside)
    assert model.weight.item() == 10.0


def test_state_round_trip() -> None:
    first = WeightAverage(_model(3.0), decay=0.99)
    first.update()
    second = WeightAverage(_model(0.0), decay=0.99)
    second.load_state_dict(first.state_dict())
    assert second.updates == 1
    assert torch.equal(second.shadow[0], first.shadow[0])


def test_training_with_an_average_checkpoints_it_and_resumes(
    tiny_base: Path, tmp_path: Path
) -> None:
    out = tmp_path / "m"
    config = tiny_config(
        tiny_base,
        epochs=3,
        ema_decay=0.9,
        keep_checkpoint=True,
        max_minutes=0.5,
        budget_probe_steps=5,
    )
    first = train(config, out, frames=toy_frames(), progress=False, clock=fake_clock(0.2))
    payload = torch.load(out / "checkpoint" / "checkpoint.pt", weights_only=False)
    assert payload["average"]["updates"] == first.steps
    resumed = train(
        tiny_config(tiny_base, epochs=3, ema_decay=0.9),
        out,
        frames=toy_frames(),
        progress=False,
        resume=True,
    )
    assert resumed.steps > first.steps
    assert resumed.metrics["holdout"]["sentiment"]["accuracy"] > 0.5  # chance is 1/3


def test_the_export_holds_averaged_weights(tiny_base: Path, tmp_path: Path) -> None:
    plain = train(
        tiny_config(tiny_base, epochs=2), tmp_path / "a", frames=toy_frames(), progress=False
    )
    averaged = train(
        tiny_config(tiny_base, epochs=2, ema_decay=0.95),
        tmp_path / "b",
        frames=toy_frames(),
        progress=False,
    )
    # Same seed, same batches: the raw weights follow the same path (same training loss) ...
    assert plain.card["run"]["history"][-1]["train_loss"] == pytest.approx(
        averaged.card["run"]["history"][-1]["train_loss"], rel=1e-4
    )
    # ... but what is exported differs: the average, not the raw weights.
    a = load_file(plain.model_dir / "model.safetensors")
    b = load_file(averaged.model_dir / "model.safetensors")
    name = "encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(a[name], b[name])


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5])
def test_bad_decay_names_the_field(tiny_base: Path, value: float) -> None:
    with pytest.raises(TrainConfigError, match="ema_decay"):
        tiny_config(tiny_base, ema_decay=value)
