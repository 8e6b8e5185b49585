from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from monitor.classify.model import build_model, load_model
from monitor.classify.quantize import cpu_has_bf16
from pipelines import precision
from pipelines.config import TrainConfig
from pipelines.errors import TrainConfigError
from pipelines.precision import autocast, training_attention, use_bf16
from pipelines.train import train
from tests.pipelines.conftest import toy_frames
from tests.pipelines.test_train import tiny_config

CPU = torch.device("cpu")
needs_native_bf16 = pytest.mark.skipif(
    not cpu_has_bf16(), reason="this CPU has no native bf16 (AVX512-BF16 or AMX)"
)


def test_fp32_never_autocasts() -> None:
    assert use_bf16("fp32", CPU) is False
    assert use_bf16("fp32", torch.device("cuda")) is False


def test_auto_follows_the_hardware() -> None:
    assert use_bf16("auto", CPU) is cpu_has_bf16()
    assert use_bf16("auto", torch.device("cuda")) is True


def test_bf16_on_a_cpu_without_native_bf16_names_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with pytest.raises(TrainConfigError, match="precision") as err:
        use_bf16("bf16", CPU)
    assert "auto or fp32" in str(err.value)
    assert use_bf16("auto", CPU) is False


def test_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(TrainConfigError, match="precision"):
        TrainConfig(precision="fp16")  # type: ignore[arg-type]


def test_autocast_runs_matmuls_in_bf16_only_when_asked() -> None:
    a = torch.randn(4, 8)
    with autocast(CPU, True):
        assert (a @ a.T).dtype == torch.bfloat16
    with autocast(CPU, False):
        assert (a @ a.T).dtype == torch.float32


def test_training_attention_is_eager_inside_and_restored_after(tiny_base: Path) -> None:
    model, tokenizer = build_model(tiny_base, {"sentiment": ("negative", "neutral", "positive")})
    model.eval()
    original = model.encoder.config._attn_implementation
    assert original != "eager"
    batch = tokenizer(
        ["Acme soars", "Fed holds rates steady today"], padding=True, return_tensors="pt"
    )
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        before = model(**inputs)["sentiment"]
        with training_attention(model, CPU, bf16=True):
            assert model.encoder.config._attn_implementation == "eager"
            inside = model(**inputs)["sentiment"]
        after = model(**inputs)["sentiment"]
    assert model.encoder.config._attn_implementation == original
    # The same function either way (fp32 here): only the kernel changes.
    torch.testing.assert_close(inside, before, rtol=1e-4, atol=1e-5)
    assert torch.equal(after, before)
    with training_attention(model, CPU, bf16=False):
        assert model.encoder.config._attn_implementation == original


@needs_native_bf16
def test_bf16_training_learns_and_exports_the_serving_attention(
    tiny_base: Path, tmp_path: Path
) -> None:
    result = train(
        tiny_config(tiny_base, precision="bf16"),
        tmp_path / "m",
        frames=toy_frames(),
        progress=False,
    )
    assert result.card["run"]["precision"] == "bf16"
    assert result.metrics["holdout"]["sentiment"]["accuracy"] > 0.6  # chance is 1/3
    assert result.metrics["holdout"]["topic"]["accuracy"] > 0.5  # 4 topics used: chance 1/4
    model, _ = load_model(result.model_dir)
    assert model.encoder.config._attn_implementation != "eager"
    saved = json.loads((result.model_dir / "config.json").read_text())
    assert saved.get("_attn_implementation", "sdpa") != "eager"


def test_fp32_training_records_its_precision(tiny_base: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_base, precision="fp32", epochs=1)
    result = train(config, tmp_path / "m", frames=toy_frames(), progress=False)
    assert result.card["run"]["precision"] == "fp32"
