"""The FinMon model: one BERT encoder shared by a topic head and a sentiment head.

Export format (a directory; ``pipelines`` writes it, the classifier loads it):

- ``config.json``, ``model.safetensors``: the encoder, Hugging Face ``save_pretrained`` layout;
- tokenizer files (``tokenizer.json``, ``vocab.txt``, ...): ``save_pretrained`` layout;
- ``finmon_heads.safetensors``: the task heads (``<task>.weight``, ``<task>.bias``), and for a
  model with entity-level sentiment the ``entity`` head, which reads the mean of a mention's token
  vectors beside the pooled sentence vector (``[span ; sentence]``, twice the hidden size);
- ``finmon_model.json``: format tag, label list per task, pooling, max length, version;
- ``model_card.json`` (optional): provenance and metrics written by the training pipeline.

A model may carry one head only (trained on one task); the missing task then predicts
``"unknown"`` with probability 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from monitor.contract import SENTIMENT_LABELS
from monitor.errors import ModelLoadError

FORMAT_TAG = "finmon-multitask/1"
META_FILE = "finmon_model.json"
HEADS_FILE = "finmon_heads.safetensors"
CARD_FILE = "model_card.json"
TASKS: tuple[str, ...] = ("topic", "sentiment")
# Heads that score a span of the text (an entity mention) rather than the whole text.
ENTITY = "entity"
SPAN_TASKS: tuple[str, ...] = (ENTITY,)
HEADS: tuple[str, ...] = TASKS + SPAN_TASKS

Pooling = Literal["mean", "cls"]


@dataclass(frozen=True)
class ModelMeta:
    """What ``finmon_model.json`` records next to the weights."""

    labels: Mapping[str, tuple[str, ...]]
    pooling: Pooling = "mean"
    max_length_tokens: int = 128
    version: str = "dev"
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Per-task softmax temperature fitted on the holdout (calibration); 1.0 when absent.
    temperatures: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_TAG,
            "labels": {task: list(names) for task, names in self.labels.items()},
            "pooling": self.pooling,
            "max_length_tokens": self.max_length_tokens,
            "version": self.version,
            "temperatures": dict(self.temperatures),
            **self.extra,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: str) -> ModelMeta:
        if data.get("format") != FORMAT_TAG:
            raise ModelLoadError(
                path, f"{META_FILE} format is {data.get('format')!r}, not {FORMAT_TAG}"
            )
        labels = {t: tuple(str(x) for x in v) for t, v in dict(data["labels"]).items()}
        if not labels or any(t not in HEADS or not v for t, v in labels.items()):
            raise ModelLoadError(path, f"labels must map {HEADS} to non-empty lists, got {labels}")
        known = {"format", "labels", "pooling", "max_length_tokens", "version", "temperatures"}
        temperatures = {str(t): float(v) for t, v in dict(data.get("temperatures") or {}).items()}
        if any(v <= 0 for v in temperatures.values()):
            raise ModelLoadError(path, f"temperatures must be > 0, got {temperatures}")
        return cls(
            labels=labels,
            pooling=data.get("pooling", "mean"),
            max_length_tokens=int(data.get("max_length_tokens", 128)),
            version=str(data.get("version", "dev")),
            extra={k: v for k, v in data.items() if k not in known},
            temperatures=temperatures,
        )


def default_labels(topics: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Label maps for a two-task model with the canonical sentiment order."""
    return {"topic": tuple(topics), "sentiment": SENTIMENT_LABELS}


def entity_labels(topics: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Label maps for a model with topic, sentiment and entity-level sentiment heads."""
    return {**default_labels(topics), ENTITY: SENTIMENT_LABELS}


class MultiTaskModel(nn.Module):
    """Shared encoder, pooled sentence vector, one linear head per task.

    ``forward`` returns ``{task: logits[batch, n_labels]}`` of the text heads, divided by the
    task's calibration temperature (``meta.temperatures``, 1.0 until fitted); it never applies
    softmax. The ``entity`` head, when present, is read through :meth:`entity_logits`.
    """

    def __init__(self, encoder: PreTrainedModel, meta: ModelMeta, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.meta = meta
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict(
            {
                task: nn.Linear(hidden * (2 if task in SPAN_TASKS else 1), len(names))
                for task, names in meta.labels.items()
            }
        )

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.meta.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-6)

    def features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The pooled sentence vectors ``[batch, hidden]`` the heads read (before dropout)."""
        out = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return self.pool(out.last_hidden_state, attention_mask)

    def logits(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each head's logits for pooled vectors from :meth:`features`."""
        pooled = self.dropout(features)
        temps = self.meta.temperatures
        return {
            task: head(pooled) / temps.get(task, 1.0)
            for task, head in self.heads.items()
            if task not in SPAN_TASKS
        }

    def entity_logits(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, spans: torch.Tensor
    ) -> torch.Tensor:
        """Entity-sentiment logits ``[n_spans, n_labels]`` (temperature applied) for ``spans``
        ``[n_spans, 3]`` = (batch row, first token, end token) over the encoder's last hidden
        states ``[batch, seq, hidden]``: the mention's mean token vector beside its text's
        pooled vector. Raises KeyError when the model has no entity head."""
        head = self.heads[ENTITY]
        rows, first, end = spans[:, 0], spans[:, 1], spans[:, 2]
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        inside = (positions >= first[:, None]) & (positions < end[:, None])
        weights = inside.to(hidden.dtype).unsqueeze(-1)
        mention = (hidden[rows] * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        sentence = self.pool(hidden, attention_mask)[rows]
        joined = self.dropout(torch.cat([mention, sentence], dim=-1))
        return head(joined) / self.meta.temperatures.get(ENTITY, 1.0)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        return self.logits(self.features(input_ids, attention_mask, token_type_ids))


def build_model(
    base: str | Path,
    labels: Mapping[str, Sequence[str]],
    pooling: Pooling = "mean",
    max_length_tokens: int = 128,
    dropout: float = 0.1,
) -> tuple[MultiTaskModel, PreTrainedTokenizerBase]:
    """Fresh heads on a pretrained encoder (a local dir or hub id), plus its tokenizer."""
    meta = ModelMeta(
        labels={t: tuple(v) for t, v in labels.items()},
        pooling=pooling,
        max_length_tokens=max_length_tokens,
    )
    encoder = AutoModel.from_pretrained(str(base))
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    return MultiTaskModel(encoder, meta, dropout=dropout), tokenizer


def save_model(
    model: MultiTaskModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | Path,
    version: str | None = None,
) -> Path:
    """Write the export format to ``out_dir`` (created if needed) and return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(out)
    tokenizer.save_pretrained(out)
    heads = {
        f"{task}.{name}": tensor.detach().cpu().contiguous()
        for task, head in model.heads.items()
        for name, tensor in head.state_dict().items()
    }
    save_file(heads, str(out / HEADS_FILE))
    meta = model.meta
    if version is not None:
        meta = replace(meta, version=version)
    (out / META_FILE).write_text(json.dumps(meta.to_json(), indent=2) + "\n", encoding="utf-8")
    return out


def load_model(path: str | Path) -> tuple[MultiTaskModel, PreTrainedTokenizerBase]:
    """Load an exported model directory (on CPU, in eval mode). Raises ModelLoadError."""
    root = Path(path)
    for name in (META_FILE, HEADS_FILE, "config.json"):
        if not (root / name).is_file():
            raise ModelLoadError(str(root), f"missing {name}; export it with `finmon train`")
    meta = ModelMeta.from_json(json.loads((root / META_FILE).read_text("utf-8")), str(root))
    try:
        encoder = AutoModel.from_pretrained(str(root))
        tokenizer = AutoTokenizer.from_pretrained(str(root))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(str(root), f"encoder or tokenizer unreadable ({exc})") from exc
    model = MultiTaskModel(encoder, meta)
    state = load_file(str(root / HEADS_FILE))
    for task, head in model.heads.items():
        try:
            head.load_state_dict({"weight": state[f"{task}.weight"], "bias": state[f"{task}.bias"]})
        except (KeyError, RuntimeError) as exc:
            raise ModelLoadError(str(root), f"head {task!r} missing or mis-sized ({exc})") from exc
    model.eval()
    return model, tokenizer


def read_card(path: str | Path) -> dict[str, Any]:
    """The model card, or an empty dict when the directory has none."""
    card = Path(path) / CARD_FILE
    return json.loads(card.read_text("utf-8")) if card.is_file() else {}
