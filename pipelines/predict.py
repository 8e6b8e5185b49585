"""Batched inference for training-time scoring and ``finmon evaluate``."""

from __future__ import annotations

from collections.abc import Sequence

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
) -> np.ndarray:
    """Softmax probabilities ``[len(texts), n_labels]`` of one task head. Blocking; no grad.

    Texts are normalised as the server does unless ``clean`` is false (already normalised).
    """
    if task not in model.heads:
        raise KeyError(f"model has no {task!r} head (heads: {list(model.heads)})")
    device = device or next(model.parameters()).device
    length = max_length_tokens or model.meta.max_length_tokens
    prepared = [normalise(t) for t in texts] if clean else list(texts)
    data = encode(tokenizer, {task: (prepared, np.zeros(len(prepared)))}, [task], length)
    pad_id = int(tokenizer.pad_token_id or 0)
    return predict_encoded(model, data, task, batch_size=batch_size, pad_id=pad_id, device=device)


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
    probs, _ = predict_encoded_outputs(
        model, data, [task], batch_size=batch_size, pad_id=pad_id, device=device, bf16=bf16
    )
    return probs[task]


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
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Probabilities of several heads from one encoder pass, ``{task: [len(data), n_labels]}``
    under bf16 autocast when ``bf16``, and, when ``features``, the pooled sentence vectors
    ``[len(data), hidden]`` (float32) from the same pass."""
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
    return out, pooled
