"""``finmon bench train``: training step time in fp32 and under bf16 autocast, side by side.

Both precisions train a fresh copy of the same model (same seed) on the same sequence of real,
length-bucketed batches from the config's training files, distillation and holdout scoring left
out; the first ``warmup_steps`` of each are not timed. Blocking.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from monitor.classify.quantize import cpu_has_bf16
from pipelines.config import TrainConfig
from pipelines.loop import TrainLoop
from pipelines.plan import build_plan
from pipelines.precision import training_attention
from pipelines.train import (
    build_optimizer,
    build_stage,
    initial_state,
    make_context,
    resolve_device,
)


def time_steps(config: TrainConfig, *, steps: int, warmup_steps: int) -> dict[str, Any]:
    """Milliseconds per training step (after warmup) and examples/s for ``config.precision``."""
    context = make_context(config, None)
    device, bf16 = context.device, context.bf16
    stage = build_plan(config, Path()).student
    model, _, data = build_stage(stage, context)
    loop = TrainLoop(
        model=model,
        optimizer=build_optimizer(model, config, stage.lr),
        config=config,
        stage=stage,
        data=replace(data, holdouts={}),
        state=initial_state(len(data.train), config, stage),
        checkpointer=None,
        clock=time.monotonic,
        progress=False,
    )
    losses = []
    with training_attention(model, device, bf16):
        for _ in range(warmup_steps):
            loop.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            losses.append(loop.step())
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    return {
        "precision": "bf16" if bf16 else "fp32",
        "ms_per_step": round(1000 * seconds / steps, 1),
        "examples_per_sec": round(steps * config.batch_size / seconds, 1),
        "final_loss": round(losses[-1], 4),
    }


def run_train_bench(config: TrainConfig, *, steps: int, warmup_steps: int) -> dict[str, Any]:
    """fp32, then bf16 where the device runs it natively; ratio = fp32 time / bf16 time."""
    device = resolve_device(config)
    runs = [time_steps(replace(config, precision="fp32"), steps=steps, warmup_steps=warmup_steps)]
    if device.type == "cuda" or cpu_has_bf16():
        bf16 = replace(config, precision="bf16")
        runs.append(time_steps(bf16, steps=steps, warmup_steps=warmup_steps))
    result: dict[str, Any] = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch_size": config.batch_size,
        "steps": steps,
        "warmup_steps": warmup_steps,
        "runs": runs,
    }
    if len(runs) == 2:
        result["bf16_speedup"] = round(runs[0]["ms_per_step"] / runs[1]["ms_per_step"], 2)
    return result


def format_train_bench(result: dict[str, Any]) -> str:
    lines = [
        f"device {result['device']}, {result['threads']} threads, batch {result['batch_size']}, "
        f"{result['steps']} timed steps after {result['warmup_steps']}"
    ]
    for run in result["runs"]:
        lines.append(
            f"{run['precision']:>5}: {run['ms_per_step']:8.1f} ms/step  "
            f"{run['examples_per_sec']:8.1f} examples/s"
        )
    if "bf16_speedup" in result:
        lines.append(f"bf16 speedup: {result['bf16_speedup']:.2f}x")
    return "\n".join(lines)


__all__ = ["format_train_bench", "run_train_bench", "time_steps"]
