"""Batched inference for training-time scoring and ``finmon evaluate``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from monitor.classify.model import MultiTaskModel
from monitor.classify.text import normalise
from pipelines.batching import Encoded, collate, encode, eval_batches
from pipelines.precision import autocast


def predict_probs(
    model: MultiTaskModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    task: str,
    *,
    batch_size: int = 128,
    max_length_tokens: int | None = None,
    device: torch.device | None = None,
    clean: bool = True,
    bf16: bool = False,
) -> np.ndarray:
    """Softmax probabilities ``[len(texts), n_labels]`` of one task head (under bf16 autocast
    when ``bf16``). Blocking; no grad.

    Texts are normalised as the server does unless ``clean`` is false (already normalised).
    """
    if task not in model.heads:
        raise KeyError(f"model has no {task!r} head (heads: {list(model.heads)})")
    device = device or next(model.parameters()).device
    length = max_length_tokens or model.meta.max_length_tokens
    prepared = [normalise(t) for t in texts] if clean else list(texts)
    data = encode(tokenizer, {task: (prepared, np.zeros(len(prepared)))}, [task], length)
    pad_id = int(tokenizer.pad_token_id or 0)
    return predict_encoded(
        model, data, task, batch_size=batch_size, pad_id=pad_id, device=device, bf16=bf16
    )


def predict_encoded(
    model: MultiTaskModel,
    data: Encoded,
    task: str,
    *,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    bf16: bool = False,
) -> np.ndarray:
    """Probabilities for already-encoded examples, in their original order."""
    outputs = predict_encoded_outputs(
        model, data, [task], batch_size=batch_size, pad_id=pad_id, device=device, bf16=bf16
    )
    return outputs.probs[task]


@dataclass(frozen=True)
class PassOutputs:
    """What one encoder pass over encoded examples gives, in their original order: each head's
    probabilities ``{task: [n, n_labels]}`` and, when asked, the pooled sentence vectors ``[n,
    hidden]`` (float32)."""

    probs: dict[str, np.ndarray]
    pooled: np.ndarray | None = None


def predict_encoded_outputs(
    model: MultiTaskModel,
    data: Encoded,
    tasks: Sequence[str],
    *,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    bf16: bool = False,
    features: bool = False,
) -> PassOutputs:
    """Probabilities of several heads from one encoder pass (under bf16 autocast when ``bf16``)
    and, when ``features``, the pooled vectors of the same pass (:class:`PassOutputs`)."""
    out = {t: np.zeros((len(data), len(model.meta.labels[t])), dtype=np.float32) for t in tasks}
    hidden = int(model.encoder.config.hidden_size)
    pooled = np.zeros((len(data), hidden), dtype=np.float32) if features else None
    was_training = model.training
    model.eval()
    with torch.inference_mode(), autocast(device, bf16):
        for index in eval_batches(data.lengths(), batch_size):
            inputs, _ = collate(data, index, pad_id, device)
            vectors = model.features(**inputs)
            logits = model.logits(vectors)
            for task in tasks:
                out[task][index] = torch.softmax(logits[task].float(), dim=-1).cpu().numpy()
            if pooled is not None:
                pooled[index] = vectors.float().cpu().numpy()
    model.train(was_training)
    return PassOutputs(out, pooled)
