"""Reduced precision for CPU serving: bf16 autocast, or int8 dynamic quantisation.

- ``bf16``: the forward pass runs under ``torch.autocast(cpu, bfloat16)`` on CPUs with native
  bf16 (AVX512-BF16 or AMX). Measured on sent_valid with the benchmark MiniLM model: 2.4x fp32
  throughput and 99.9% label agreement with fp32.
- ``int8``: the encoder's linear layers are quantised per output channel ahead of time,
  activations per batch at run time; the task heads stay fp32. Faster than fp32 everywhere, but
  only 97-98% label agreement on the same model, so it is opt-in.
- ``auto``: bf16 where the CPU supports it natively, else fp32 (``none``). On CUDA the engine
  always runs bf16 autocast.

Check agreement with fp32 on labelled data before serving reduced precision:
``finmon bench classify`` prints it.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from monitor.classify.model import MultiTaskModel
from monitor.errors import ConfigError

Quantize = Literal["none", "int8", "bf16", "auto"]
Precision = Literal["none", "int8", "bf16"]


def cpu_has_bf16() -> bool:
    """Native bf16 matmuls on this CPU (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_quantize(quantize: Quantize, device: torch.device) -> Precision:
    """The precision to serve; int8 or bf16 requested for a GPU is a configuration error."""
    if quantize == "auto":
        return "bf16" if device.type == "cpu" and cpu_has_bf16() else "none"
    if quantize in ("int8", "bf16") and device.type != "cpu":
        raise ConfigError(
            "model.quantize",
            f"{quantize} is a CPU precision setting, device is {device}",
            "use quantize: none (CUDA runs bf16 autocast) or device: cpu",
        )
    return quantize


def cast_linears_bf16(model: MultiTaskModel) -> MultiTaskModel:
    """Store every linear layer's weights in bf16, once (in place; returned for chaining).

    Under bf16 autocast a linear layer casts its fp32 weight to bf16 on every call; a weight
    cast once has the same values, so the outputs are the same, and a forward of 32 to 64 items
    costs 7 to 16% less on 2 CPU cores (docs/bench-e2e.md, Round 7). Only for a model that runs
    under bf16 autocast: without it, fp32 inputs meet bf16 weights and the call fails loudly.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.to(torch.bfloat16)
    return model


def quantize_int8(model: MultiTaskModel) -> MultiTaskModel:
    """Quantise the encoder of ``model`` in place (returned for chaining); eval mode, CPU."""
    model.encoder = quantize_dynamic(
        model.encoder.cpu().eval(), {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
    )
    return model
