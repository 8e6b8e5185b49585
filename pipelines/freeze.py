"""Optional layer freezing: the embeddings and the bottom transformer layers stop training.

A frozen layer still runs forward, but the backward pass stops above it and the optimiser skips
its weights, so each step is cheaper (measured side by side for all-mpnet-base-v2, batch 32,
bf16 on 2 CPU threads: 1.09x with the embeddings frozen, 1.27x with the bottom 4 of 12 layers
too, 1.45x with the bottom 6; docs/benchmarks.md, "Run 13").
"""

from __future__ import annotations

from typing import Any

from torch import nn

from monitor.classify.model import MultiTaskModel
from pipelines.errors import TrainConfigError


def freeze_bottom(model: MultiTaskModel, layers: int | None, key: str = "freeze_layers") -> int:
    """Freeze the encoder's embeddings and its bottom ``layers`` layers (None: nothing; 0: the
    embeddings alone). Returns the number of parameters frozen. Raises TrainConfigError, naming
    ``key``, when the encoder has no such layers."""
    if layers is None:
        return 0
    encoder: Any = model.encoder
    embeddings = getattr(encoder, "embeddings", None)
    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(embeddings, nn.Module) or not isinstance(stack, nn.ModuleList):
        raise TrainConfigError(key, "the encoder has no BERT-style embeddings and layer stack")
    if layers > len(stack):
        raise TrainConfigError(key, f"the encoder has {len(stack)} layers, got {layers}")
    frozen = 0
    for module in (embeddings, *stack[:layers]):
        for param in module.parameters():
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


__all__ = ["freeze_bottom"]
