"""Task-adaptive pretraining (TAPT): masked-language-model steps on the run's training texts.

The default base encoder was trained for sentence similarity on general English; it never saw
cashtags, tickers or finance-tweet style. A short run of BERT's own masked-LM objective on the
run's training texts (Gururangan et al. 2020, "Don't Stop Pretraining") adapts it before the
classifier is fine-tuned. Only training texts are used: never the holdout or the test sets.

The masked-LM head is not part of the export: only the adapted encoder (and its tokenizer) is
written, in the base-model format that ``build_model`` loads.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pipelines.batching import Encoded, collate, epoch_batches, token_ids
from pipelines.errors import TrainConfigError
from pipelines.precision import autocast
from pipelines.schedule import BudgetProbe, WarmupLinear, fit_total_steps, planned_steps

logger = logging.getLogger(__name__)

ADAPT_FILE = "adapt.json"
IGNORE = -100
WARMUP_FRACTION = 0.06
BUDGET_PROBE_STEPS = 20


@dataclass(frozen=True)
class MaskingSpec:
    """BERT's masking: ``fraction`` of the non-special tokens are picked; of those, 80% become
    ``mask_id``, 10% a random token id below ``vocab_size``, 10% stay as they are."""

    mask_id: int
    vocab_size: int
    special_ids: tuple[int, ...]
    fraction: float = 0.15


def mask_tokens(
    ids: torch.Tensor, attention: torch.Tensor, spec: MaskingSpec, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked inputs, labels): labels hold the original id at picked positions, IGNORE
    elsewhere. Padding and special tokens are never picked. Pure given ``generator``."""
    candidates = attention.bool() & ~torch.isin(ids, torch.tensor(spec.special_ids))
    picked = (torch.rand(ids.shape, generator=generator) < spec.fraction) & candidates
    labels = torch.where(picked, ids, torch.full_like(ids, IGNORE))
    roll = torch.rand(ids.shape, generator=generator)
    random_ids = torch.randint(spec.vocab_size, ids.shape, generator=generator)
    inputs = torch.where(picked & (roll < 0.8), torch.full_like(ids, spec.mask_id), ids)
    inputs = torch.where(picked & (roll >= 0.8) & (roll < 0.9), random_ids, inputs)
    return inputs, labels


@dataclass(frozen=True)
class AdaptResult:
    """What the adaptation did (written to ``adapt.json`` and the model card)."""

    steps: int
    planned_steps: int
    epochs: float
    texts: int
    seconds: float
    first_loss: float
    last_loss: float
    stopped: str


def adapted_result(out_dir: Path) -> AdaptResult | None:
    """The result of a finished adaptation in ``out_dir``, or None."""
    path = out_dir / ADAPT_FILE
    if not path.is_file():
        return None
    return AdaptResult(**json.loads(path.read_text("utf-8")))


def adapt_encoder(
    base_dir: str,
    texts: Sequence[str],
    out_dir: Path,
    *,
    epochs: float,
    lr: float,
    batch_size: int,
    max_length_tokens: int,
    max_minutes: float | None,
    seed: int,
    device: torch.device,
    bf16: bool,
    progress: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> AdaptResult:
    """Masked-LM training of ``base_dir``'s encoder on ``texts``; the encoder and tokenizer are
    saved to ``out_dir`` with ``adapt.json``. AdamW, 6% warmup then linear decay; the decay is cut
    short to end inside ``max_minutes``. Blocking.

    Raises TrainConfigError when the base model has no masked-LM form.
    """
    from transformers import AutoTokenizer

    started = clock()
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    mlm = _MaskedLM(base_dir, device, bf16, lr)
    data = Encoded(tuple(token_ids(tokenizer, texts, max_length_tokens)), {})
    lengths, pad_id = data.lengths(), int(tokenizer.pad_token_id or 0)
    spec = MaskingSpec(
        mask_id=int(tokenizer.mask_token_id),
        vocab_size=len(tokenizer),
        special_ids=tuple(sorted(set(tokenizer.all_special_ids))),
    )
    per_epoch, planned = planned_steps(len(data), batch_size, epochs)
    generator = torch.Generator().manual_seed(seed)
    budget_sec = None if max_minutes is None else max_minutes * 60
    losses: list[float] = []
    total, stopped, step, epoch = planned, "planned steps done", 0, 0
    bar = tqdm(total=planned, desc="adapt", disable=not progress, dynamic_ncols=True)
    while step < total:
        for index in epoch_batches(lengths, batch_size, seed + epoch):
            if step >= total:
                break
            factor = WarmupLinear(round(WARMUP_FRACTION * planned), total).factor(step)
            batch = _masked_batch(
                data, index, pad_id, spec=spec, generator=generator, device=device
            )
            loss = mlm.step(*batch, lr=lr * factor)
            losses.extend([] if loss is None else [loss])
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:] or [0.0]):.3f}")
            if budget_sec is not None and step == BUDGET_PROBE_STEPS:
                total = _fit_budget(step, total, clock() - started, budget_sec)
            if budget_sec is not None and clock() - started >= budget_sec:
                total, stopped = step, "time budget"
        epoch += 1
    bar.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    mlm.encoder.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    result = AdaptResult(
        steps=step,
        planned_steps=planned,
        epochs=round(step / per_epoch, 3),
        texts=len(data),
        seconds=round(clock() - started, 1),
        first_loss=round(float(np.mean(losses[:50] or [0.0])), 4),
        last_loss=round(float(np.mean(losses[-50:] or [0.0])), 4),
        stopped=stopped,
    )
    (out_dir / ADAPT_FILE).write_text(json.dumps(asdict(result), indent=2), "utf-8")
    logger.info("adapted encoder: %s", asdict(result))
    return result


class _MaskedLM:
    """The base model with its masked-LM head (new where the checkpoint has none) and AdamW.
    The head runs on the picked positions only: the vocabulary projection of every position would
    cost as much as the encoder."""

    def __init__(self, base_dir: str, device: torch.device, bf16: bool, lr: float) -> None:
        from transformers import AutoModelForMaskedLM

        # Eager attention: the CPU's bf16 flash-attention backward is slow (pipelines.precision).
        attention = "eager" if bf16 and device.type == "cpu" else None
        try:
            model = AutoModelForMaskedLM.from_pretrained(base_dir, attn_implementation=attention)
        except (ValueError, OSError) as exc:
            raise TrainConfigError(
                "adapt_epochs", f"{base_dir} has no masked-LM form ({exc}); set adapt_epochs: 0"
            ) from exc
        head = getattr(model, "cls", None) or getattr(model, "lm_head", None)
        if head is None:
            raise TrainConfigError(
                "adapt_epochs", f"{base_dir}: no BERT/RoBERTa masked-LM head; set adapt_epochs: 0"
            )
        self.model: nn.Module = model.to(device).train()
        self.encoder: Any = model.base_model
        self.head: nn.Module = head
        self.device, self.bf16 = device, bf16
        self.optimizer = torch.optim.AdamW(_groups(self.model), lr=lr)

    def step(
        self, inputs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, *, lr: float
    ) -> float | None:
        """One optimiser step at ``lr``; the batch's masked-LM loss (None: nothing was picked,
        so nothing was learnt)."""
        picked = labels != IGNORE
        if not bool(picked.any()):
            return None
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast(self.device, self.bf16):
            hidden = self.encoder(input_ids=inputs, attention_mask=mask).last_hidden_state
            logits = self.head(hidden[picked])
        loss = nn.functional.cross_entropy(logits.float(), labels[picked])
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.item())


def _groups(model: nn.Module) -> list[dict[str, Any]]:
    decay: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        (plain if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": 0.01}, {"params": plain, "weight_decay": 0.0}]


def _masked_batch(
    data: Encoded,
    index: np.ndarray,
    pad_id: int,
    *,
    spec: MaskingSpec,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(masked inputs, labels, attention mask) of one batch, on ``device``."""
    inputs, _ = collate(data, index, pad_id, torch.device("cpu"))
    mask = inputs["attention_mask"]
    masked, labels = mask_tokens(inputs["input_ids"], mask, spec, generator)
    return masked.to(device), labels.to(device), mask.to(device)


def _fit_budget(step: int, total: int, spent_sec: float, budget_sec: float) -> int:
    """Steps that fit the budget at the pace so far (never more than planned)."""
    probe = BudgetProbe(
        done_steps=step,
        elapsed_sec=spent_sec,
        sec_per_step=spent_sec / step,
        sec_per_eval=0.0,
        steps_per_eval=1,
    )
    fits = fit_total_steps(probe, total, budget_sec)
    if fits < total:
        logger.info("adapt: the time budget allows %d of %d planned steps", fits, total)
    return fits
