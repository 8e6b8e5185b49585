"""Score an exported model on a labelled file: metrics, calibration, robustness, confusion PNG.

The JSON written (and returned) holds accuracy, macro/weighted P/R/F1, the per-class table, the
confusion matrix, expected calibration error, and accuracy / flip rate under typo noise.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from monitor.classify.model import MultiTaskModel, load_model
from monitor.classify.text import normalise
from pipelines.data import SENTIMENT_SPEC, LabelSpec, load_table, map_labels, topic_spec
from pipelines.errors import DataError
from pipelines.noise import noisy_copies
from pipelines.predict import predict_probs
from pipelines.scoring import confusion, expected_calibration_error, report

logger = logging.getLogger(__name__)

Task = Literal["sentiment", "topic"]


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    task: Task | None = None
    text_col: str = "text"
    label_col: str = "label"
    out_dir: str | None = None
    batch_size: int = 128
    robustness: bool = True
    noise_seed: int = 13
    device: str | None = None


@dataclass(frozen=True)
class _Scorer:
    model: MultiTaskModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    batch_size: int

    def probs(self, texts: list[str], task: str) -> np.ndarray:
        return predict_probs(
            self.model,
            self.tokenizer,
            texts,
            task,
            batch_size=self.batch_size,
            device=self.device,
            clean=False,
        )


def evaluate(
    model_dir: str | Path, data: str | Path, options: EvalOptions = EvalOptions()
) -> dict[str, Any]:
    """Evaluate and write ``<out_dir>/<stem>-<task>.json`` and ``...-confusion.png``.

    ``out_dir`` defaults to ``<model_dir>/eval``. Blocking. Raises DataError (bad file or labels),
    ModelLoadError (bad model directory).
    """
    model, tokenizer = load_model(model_dir)
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    scorer = _Scorer(model.to(device), tokenizer, device, options.batch_size)
    frame = load_table(data, options.text_col, options.label_col)
    task = options.task or infer_task(list(model.heads), Path(data).name, frame["label"].tolist())
    if task not in model.heads:
        raise DataError(
            str(data), f"model {model_dir} has no {task!r} head", column=options.label_col
        )
    spec = _spec(task, model.meta.labels[task])
    truth = map_labels(frame["label"].tolist(), spec, str(data), options.label_col)
    texts = [normalise(t) for t in frame["text"].tolist()]
    probs = scorer.probs(texts, task)
    matrix = confusion(truth, probs.argmax(axis=1), len(spec.names))
    result: dict[str, Any] = {
        "model": str(model_dir),
        "data": str(data),
        "task": task,
        **report(matrix, spec.names).to_json(),
        "ece": expected_calibration_error(probs, truth),
        "confusion": matrix.tolist(),
        "labels": list(spec.names),
    }
    if options.robustness:
        noisy = scorer.probs(noisy_copies(texts, options.noise_seed), task)
        result["robustness"] = robustness(truth, probs, noisy) | {"noise_seed": options.noise_seed}
    out = Path(options.out_dir) if options.out_dir else Path(model_dir) / "eval"
    result["files"] = _write(result, matrix, out / f"{Path(data).stem}-{task}")
    return result


def infer_task(heads: list[str], file_name: str, labels: list[object]) -> Task:
    """The task of a file: the only head, else the file name, else the label values."""
    if len(heads) == 1 and heads[0] in ("sentiment", "topic"):
        return "sentiment" if heads[0] == "sentiment" else "topic"
    lowered = file_name.lower()
    if lowered.startswith("sent"):
        return "sentiment"
    if lowered.startswith("topic"):
        return "topic"
    table = SENTIMENT_SPEC.lookup()
    if all(isinstance(v, str) and v.strip().lower() in table for v in labels):
        return "sentiment"
    raise DataError(file_name, "cannot tell the task from the file; pass --task")


def _spec(task: str, names: tuple[str, ...]) -> LabelSpec:
    if task == "sentiment":
        return LabelSpec(
            names=names, id_names=SENTIMENT_SPEC.id_names, synonyms=SENTIMENT_SPEC.synonyms
        )
    return topic_spec(names)


def robustness(truth: np.ndarray, clean: np.ndarray, noisy: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 on noisy copies, the accuracy drop, and how many predictions flip."""
    clean_pred, noisy_pred = clean.argmax(axis=1), noisy.argmax(axis=1)
    n = clean.shape[1]
    noisy_report = report(confusion(truth, noisy_pred, n), [str(i) for i in range(n)])
    return {
        "noisy_accuracy": noisy_report.accuracy,
        "noisy_macro_f1": noisy_report.macro_f1,
        "accuracy_drop": float((clean_pred == truth).mean()) - noisy_report.accuracy,
        "flip_rate": float((clean_pred != noisy_pred).mean()),
    }


def _write(result: dict[str, Any], matrix: np.ndarray, stem: Path) -> dict[str, str]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, png_path = Path(f"{stem}.json"), Path(f"{stem}-confusion.png")
    files = {"json": str(json_path), "confusion_png": str(png_path)}
    json_path.write_text(json.dumps({**result, "files": files}, indent=2) + "\n", encoding="utf-8")
    title = f"{result['task']}: {Path(result['data']).name}"
    plot_confusion(matrix, tuple(result["labels"]), png_path, title=title)
    return files


def plot_confusion(matrix: np.ndarray, names: tuple[str, ...], path: Path, title: str) -> None:
    """Row-normalised confusion matrix with raw counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    size = max(4.0, 0.45 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if share[i, j] > 0.5 else "black",
            )
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
