"""``finmon evaluate --task entity``: entity-level sentiment on a file with an entities column.

One run reports, on the same file:

- ``entity``: every entity of every headline (accuracy, macro/weighted P/R/F1, per-class table,
  ECE), and the same on the ``mixed`` headlines (entities that disagree) and the single-label ones;
- ``baseline``: each entity given its headline's predicted sentiment (the sentiment head), on
  all headlines and on the mixed ones;
- ``headline``: the sentiment head on the single-label headlines (their label), with ECE;
- ``robustness`` under typos (:mod:`pipelines.noise`): the headline figures on noisy copies, and
  the entity figures on the entities whose name the noise left findable;
- ``not_found``: entities the text does not contain (reported, never scored).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from monitor.classify.model import ENTITY, MultiTaskModel, load_model
from pipelines.data import LABEL, TEXT
from pipelines.entities import ENTITIES, MIXED_ID, encode_news, load_news, predict_entities
from pipelines.errors import DataError
from pipelines.evaluate import EvalOptions, robustness
from pipelines.labels import SENTIMENT_LABELS
from pipelines.noise import noisy_copies
from pipelines.predict import predict_probs
from pipelines.scoring import confusion, expected_calibration_error, report


@dataclass(frozen=True, kw_only=True)
class EntityEvalOptions(EvalOptions):
    """``finmon evaluate`` options plus the entities column (``task`` is not read)."""

    entities_col: str = ENTITIES


@dataclass(frozen=True)
class _Scored:
    """Per entity of the file (row order, then entity order): row, truth, probabilities
    (NaN rows where the name was not found)."""

    rows: np.ndarray
    truth: np.ndarray
    probs: np.ndarray
    headline: np.ndarray  # per row: sentiment-head probabilities

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.probs[:, 0])


def evaluate_entities(
    model_dir: str | Path, data: str | Path, options: EntityEvalOptions = EntityEvalOptions()
) -> dict[str, Any]:
    """Score and write ``<out_dir>/<stem>-entity.json`` (``out_dir``: ``<model_dir>/eval``).
    Blocking. Raises DataError (bad file, no entity head), ModelLoadError (bad model)."""
    model, tokenizer = load_model(model_dir)
    if ENTITY not in model.heads:
        raise DataError(str(data), f"model {model_dir} has no entity head", column=ENTITIES)
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device)
    frame = load_news(data, options.text_col, options.label_col, options.entities_col)
    clean = _score(model, tokenizer, frame, device, options.batch_size)
    result: dict[str, Any] = {
        "model": str(model_dir),
        "data": str(data),
        "task": ENTITY,
        "headlines": len(frame),
        "mixed_headlines": int((frame[LABEL] == MIXED_ID).sum()),
        **_figures(clean, frame),
        "not_found": _not_found(clean, frame),
    }
    if options.robustness:
        noisy_frame = frame.assign(**{TEXT: noisy_copies(frame[TEXT].tolist(), options.noise_seed)})
        noisy = _score(model, tokenizer, noisy_frame, device, options.batch_size)
        result["robustness"] = _robustness(clean, noisy, frame) | {"noise_seed": options.noise_seed}
    out = Path(options.out_dir) if options.out_dir else Path(model_dir) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{Path(data).stem}-entity.json"
    result["files"] = {"json": str(path)}
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _score(
    model: MultiTaskModel, tokenizer: Any, frame: pd.DataFrame, device: torch.device, batch: int
) -> _Scored:
    length = model.meta.max_length_tokens
    encoded = encode_news(tokenizer, frame, ["sentiment"], length)
    pad_id = int(tokenizer.pad_token_id or 0)
    span_probs = predict_entities(
        model, encoded.data, batch_size=batch, pad_id=pad_id, device=device
    )
    rows, truth = [], []
    probs = np.full((sum(len(f) for f in encoded.found), len(SENTIMENT_LABELS)), np.nan)
    k = cursor = 0
    for row, (found, entities) in enumerate(zip(encoded.found, frame[ENTITIES], strict=True)):
        for hit, (_, label) in zip(found, entities, strict=True):
            rows.append(row)
            truth.append(label)
            if hit:
                probs[k] = span_probs[cursor]
                cursor += 1
            k += 1
    texts = frame[TEXT].tolist()
    headline = predict_probs(
        model, tokenizer, texts, "sentiment", batch_size=batch, device=device, clean=False
    )
    return _Scored(np.asarray(rows), np.asarray(truth), probs, headline)


def _figures(scored: _Scored, frame: pd.DataFrame) -> dict[str, Any]:
    mixed_rows = frame[LABEL].to_numpy() == MIXED_ID
    found = scored.found
    mixed = mixed_rows[scored.rows] & found
    single = ~mixed_rows[scored.rows] & found
    baseline = scored.headline[scored.rows]
    heads = ~mixed_rows
    return {
        "entity": _block(scored.truth[found], scored.probs[found]),
        "entity_mixed": _block(scored.truth[mixed], scored.probs[mixed]),
        "entity_single": _block(scored.truth[single], scored.probs[single]),
        "baseline": _block(scored.truth[found], baseline[found]),
        "baseline_mixed": _block(scored.truth[mixed], baseline[mixed]),
        "headline": _block(frame[LABEL].to_numpy()[heads], scored.headline[heads]),
    }


def _block(truth: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    if not len(truth):
        return {"n": 0}
    matrix = confusion(truth, probs.argmax(axis=1), len(SENTIMENT_LABELS))
    return {
        **report(matrix, SENTIMENT_LABELS).to_json(),
        "ece": expected_calibration_error(probs, truth),
        "confusion": matrix.tolist(),
    }


def _not_found(scored: _Scored, frame: pd.DataFrame) -> dict[str, Any]:
    missing = np.flatnonzero(~scored.found)
    names = [
        {"row": int(scored.rows[i]) + 1, "text": frame[TEXT].iat[int(scored.rows[i])]}
        for i in missing[:20]
    ]
    return {"count": len(missing), "first": names}


def _robustness(clean: _Scored, noisy: _Scored, frame: pd.DataFrame) -> dict[str, Any]:
    heads = frame[LABEL].to_numpy() != MIXED_ID
    truth = frame[LABEL].to_numpy()[heads]
    both = clean.found & noisy.found
    return {
        "headline": robustness(truth, clean.headline[heads], noisy.headline[heads]),
        "entity": robustness(clean.truth[both], clean.probs[both], noisy.probs[both]),
        "entities_findable_after_noise": int(both.sum()),
    }


def format_entity_report(result: dict[str, Any]) -> str:
    """Human-readable summary: the blocks, then the per-class table of all entities."""
    lines = [
        f"entity-level sentiment on {result['data']} ({result['headlines']} headlines, "
        f"{result['mixed_headlines']} mixed; {result['not_found']['count']} entities not found "
        "in their text, not scored)",
        f"{'':<34}{'n':>6}  accuracy  macro-F1    ECE",
    ]
    titles = {
        "entity": "entity head, all entities",
        "entity_mixed": "entity head, mixed headlines",
        "entity_single": "entity head, single-label headlines",
        "baseline": "headline prediction, all entities",
        "baseline_mixed": "headline prediction, mixed",
        "headline": "headline sentiment, single-label",
    }
    for key, title in titles.items():
        block = result[key]
        if block.get("n"):
            lines.append(
                f"{title:<34}{block['n']:>6}  {block['accuracy']:8.4f}  {block['macro_f1']:8.4f}"
                f"  {block['ece']:.4f}"
            )
    if "robustness" in result:
        for key in ("headline", "entity"):
            rob = result["robustness"][key]
            lines.append(
                f"typos, {key}: accuracy {rob['noisy_accuracy']:.4f} "
                f"(drop {rob['accuracy_drop']:+.4f}), flip rate {rob['flip_rate']:.4f}"
            )
    lines.append(_per_class(result["entity"]["per_class"]))
    lines.append(f"wrote {result['files']['json']}")
    return "\n".join(lines)


def _per_class(per_class: dict[str, Any], names: Sequence[str] = SENTIMENT_LABELS) -> str:
    rows = ["entity head per class  precision  recall     f1  support"]
    for name in names:
        s = per_class[name]
        rows.append(
            f"{name:<22}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:5.4f}"
            f"  {s['support']:7d}"
        )
    return "\n".join(rows)
