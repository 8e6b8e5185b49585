from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from monitor.classify.model import build_model, read_card
from pipelines.adapt import ADAPT_FILE, IGNORE, MaskingSpec, adapt_encoder, mask_tokens
from pipelines.errors import TrainConfigError
from pipelines.train import ADAPTED_DIR, train
from tests.pipelines.conftest import toy_frames
from tests.pipelines.test_train import fake_clock, tiny_config

SPEC = MaskingSpec(mask_id=103, vocab_size=1000, special_ids=(0, 101, 102), fraction=0.15)


def _rows(n: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` rows of [CLS] ids... [SEP] padding, every length from 3 to ``width``."""
    ids = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i in range(n):
        length = 3 + i % (width - 2)
        ids[i, :length] = torch.randint(200, 1000, (length,))
        ids[i, 0], ids[i, length - 1] = 101, 102
        mask[i, :length] = 1
    return ids, mask


def test_masking_picks_only_real_tokens_at_the_set_rate() -> None:
    ids, mask = _rows(400, 40)
    inputs, labels = mask_tokens(ids, mask, SPEC, torch.Generator().manual_seed(0))
    picked = labels != IGNORE
    assert not picked[mask == 0].any()  # never padding
    assert not picked[torch.isin(ids, torch.tensor(SPEC.special_ids))].any()  # never [CLS]/[SEP]
    assert torch.equal(labels[picked], ids[picked])
    assert torch.equal(inputs[~picked], ids[~picked])  # unpicked positions untouched
    real = int((mask.bool() & ~torch.isin(ids, torch.tensor(SPEC.special_ids))).sum())
    assert picked.sum() / real == pytest.approx(0.15, abs=0.01)
    masked = (inputs[picked] == SPEC.mask_id).float().mean().item()
    kept = (inputs[picked] == ids[picked]).float().mean().item()
    assert masked == pytest.approx(0.8, abs=0.03)
    assert kept == pytest.approx(0.1, abs=0.03)  # plus the rare random draw of the same id


def test_masking_is_deterministic_in_the_generator() -> None:
    ids, mask = _rows(20, 16)
    a = mask_tokens(ids, mask, SPEC, torch.Generator().manual_seed(5))
    b = mask_tokens(ids, mask, SPEC, torch.Generator().manual_seed(5))
    c = mask_tokens(ids, mask, SPEC, torch.Generator().manual_seed(6))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[1], c[1])


def test_adaptation_lowers_the_masked_lm_loss_and_saves_a_loadable_encoder(
    tiny_base: Path, tmp_path: Path
) -> None:
    texts = toy_frames(120)["sentiment"]["text"].tolist()
    out = tmp_path / "adapted"
    result = adapt_encoder(
        str(tiny_base),
        texts,
        out,
        epochs=12,
        lr=3e-3,
        batch_size=16,
        max_length_tokens=24,
        max_minutes=None,
        seed=0,
        device=torch.device("cpu"),
        bf16=False,
        progress=False,
    )
    assert result.steps == result.planned_steps == 12 * 8
    assert result.last_loss < 0.8 * result.first_loss
    assert json.loads((out / ADAPT_FILE).read_text())["steps"] == result.steps
    before = load_file(tiny_base / "model.safetensors")
    after = load_file(out / "model.safetensors")
    # The encoder alone: no masked-LM head (BERT's unused pooler is not kept either).
    assert set(after) <= set(before)
    assert {k for k in before if not k.startswith("pooler.")} <= set(after)
    assert not torch.equal(
        after["encoder.layer.0.attention.self.query.weight"],
        before["encoder.layer.0.attention.self.query.weight"],
    )
    model, _ = build_model(out, {"sentiment": ("negative", "neutral", "positive")})
    assert model.encoder.config.hidden_size == 32


def test_adaptation_stops_inside_its_time_budget(tiny_base: Path, tmp_path: Path) -> None:
    result = adapt_encoder(
        str(tiny_base),
        toy_frames(120)["sentiment"]["text"].tolist(),
        tmp_path / "adapted",
        epochs=50,
        lr=1e-3,
        batch_size=16,
        max_length_tokens=24,
        max_minutes=0.5,
        seed=0,
        device=torch.device("cpu"),
        bf16=False,
        progress=False,
        clock=fake_clock(0.5),
    )
    assert result.steps < result.planned_steps
    assert result.seconds <= 30.0


def test_train_adapts_first_and_records_it(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, epochs=2, adapt_epochs=2, adapt_lr=1e-3)
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    card = read_card(result.model_dir)
    assert card["adapted"]["steps"] > 0
    assert card["base_model"] == str(tiny_base)  # the original base, not the temporary one
    assert card["training_config"]["adapt_epochs"] == 2
    assert not (tmp_path / "m" / ADAPTED_DIR).exists()  # removed without keep_checkpoint


def test_resume_reuses_a_finished_adaptation(
    tiny_base: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "m"
    config = tiny_config(tiny_base, epochs=1, adapt_epochs=1, keep_checkpoint=True)
    first = train(config, out, frames=toy_frames(), progress=False)
    caplog.set_level("INFO", logger="pipelines.train")
    again = train(config, out, frames=toy_frames(), progress=False, resume=True)
    assert "adapted encoder already at" in caplog.text
    assert again.card["adapted"] == first.card["adapted"]


@pytest.mark.parametrize(
    ("field", "value"), [("adapt_epochs", -1.0), ("adapt_lr", 0.0), ("adapt_max_minutes", 0.0)]
)
def test_bad_adaptation_settings_name_the_field(tiny_base: Path, field: str, value: float) -> None:
    with pytest.raises(TrainConfigError, match=field):
        tiny_config(tiny_base, **{field: value})
