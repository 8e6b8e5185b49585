"""Training precision: bf16 autocast where the hardware runs it natively, fp32 elsewhere.

On a CUDA device, and on a CPU with native bf16 units (AVX512-BF16 or AMX), the forward and
backward matmuls run under ``torch.autocast(bfloat16)``; weights, optimiser state and the loss stay
fp32. On such a CPU the encoder trains with eager attention: PyTorch's CPU flash-attention backward
in bf16 is slower than the whole rest of the step (measured for MiniLM-L6, batch 128 x 28 tokens,
2 threads: SDPA bf16 926 ms/step, eager bf16 441 ms/step, fp32 1154 ms/step).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch

from monitor.classify.model import MultiTaskModel
from monitor.classify.quantize import cpu_has_bf16
from pipelines.config import TrainPrecision
from pipelines.errors import TrainConfigError


def use_bf16(precision: TrainPrecision, device: torch.device) -> bool:
    """Whether to train under bf16 autocast; ``bf16`` on a CPU without native bf16 is an error
    (emulated bf16 is several times slower than fp32)."""
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    if precision == "bf16" and not native:
        raise TrainConfigError(
            "precision",
            f"bf16 needs a CUDA device or a CPU with AVX512-BF16/AMX, device is {device}; "
            "use precision: auto or fp32",
        )
    return precision == "bf16" or (precision == "auto" and native)


def autocast(device: torch.device, bf16: bool) -> AbstractContextManager[Any]:
    """bf16 autocast on ``device`` when ``bf16``, else a no-op."""
    if not bf16:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@contextmanager
def training_attention(model: MultiTaskModel, device: torch.device, bf16: bool) -> Iterator[None]:
    """Eager attention while training in bf16 on a CPU; the original implementation (saved with
    the export and used for serving) is restored on exit."""
    encoder: Any = model.encoder
    setter = getattr(encoder, "set_attn_implementation", None)
    original = getattr(encoder.config, "_attn_implementation", None)
    if not (bf16 and device.type == "cpu") or setter is None or original in (None, "eager"):
        yield
        return
    setter("eager")
    try:
        yield
    finally:
        setter(original)


__all__ = ["autocast", "training_attention", "use_bf16"]
