"""Optional parameter-efficient fine-tuning: LoRA adapters on the encoder through ``peft``.

With ``lora_rank`` unset both functions return the model unchanged. Export always merges the
adapters back, so the served directory is a plain encoder in the usual format.
"""

from __future__ import annotations

from typing import Any

from monitor.classify.model import MultiTaskModel
from pipelines.config import TrainConfig
from pipelines.errors import TrainConfigError

TARGET_MODULES = ("query", "key", "value", "dense")


def apply_lora(model: MultiTaskModel, config: TrainConfig) -> MultiTaskModel:
    """Wrap the encoder with LoRA adapters (heads stay fully trainable). Raises TrainConfigError
    when ``peft`` is not installed."""
    if config.lora_rank is None:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise TrainConfigError("lora_rank", "needs `pip install peft`") from exc
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules=list(TARGET_MODULES),
    )
    wrapped: Any = get_peft_model(model.encoder, lora)
    model.encoder = wrapped
    return model


def merge_lora(model: MultiTaskModel) -> MultiTaskModel:
    """Fold adapters into the encoder weights (in place) so ``save_model`` writes plain BERT."""
    encoder: Any = model.encoder
    if hasattr(encoder, "merge_and_unload"):
        model.encoder = encoder.merge_and_unload()
    return model
