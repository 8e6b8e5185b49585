"""Reduced precision for CPU serving: int8 dynamic quantisation of the encoder's linear layers.

Weights are quantised per output channel ahead of time, activations per batch at run time. The
task heads stay fp32 (they are tiny and decide the label). Check agreement with fp32 on labelled
data before serving int8: ``finmon bench classify`` prints it.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from monitor.classify.model import MultiTaskModel
from monitor.errors import ConfigError

Quantize = Literal["none", "int8", "auto"]


def resolve_quantize(quantize: Quantize, device: torch.device) -> Literal["none", "int8"]:
    """``auto`` means int8 on CPU and none elsewhere; int8 on a GPU is a configuration error."""
    if quantize == "auto":
        return "int8" if device.type == "cpu" else "none"
    if quantize == "int8" and device.type != "cpu":
        raise ConfigError(
            "model.quantize",
            f"int8 runs on CPU only, device is {device}",
            "use quantize: none (CUDA runs bf16 autocast) or device: cpu",
        )
    return quantize


def quantize_int8(model: MultiTaskModel) -> MultiTaskModel:
    """Quantise the encoder of ``model`` in place (returned for chaining); eval mode, CPU."""
    model.encoder = quantize_dynamic(
        model.encoder.cpu().eval(), {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
    )
    return model
