"""Labelled text tables: load (CSV, JSONL, Parquet), map labels, clean, dedup, split.

Every function here is pure over pandas frames except :func:`load_table`, which reads a file.
Errors name the file, the 1-based record number and the column.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.classify.text import dedup_key, normalise
from pipelines.errors import DataError
from pipelines.labels import (
    SENTIMENT_LABELS,
    SENTIMENT_SYNONYMS,
    TWITTER_SENTIMENT_IDS,
    TWITTER_TOPICS,
)

logger = logging.getLogger(__name__)

TEXT = "text"
LABEL = "label"
KEY = "key"
_LINE_IN_ERROR = re.compile(r"line (\d+)")


@dataclass(frozen=True, kw_only=True)
class LabelSpec:
    """Label names of one task, the names that ids in data files stand for, and synonyms."""

    names: tuple[str, ...]
    id_names: tuple[str, ...]
    synonyms: Mapping[str, str]

    def lookup(self) -> dict[str, int]:
        table = {name.lower(): i for i, name in enumerate(self.names)}
        for alias, name in self.synonyms.items():
            if name in self.names:
                table[alias.lower()] = self.names.index(name)
        return table


SENTIMENT_SPEC = LabelSpec(
    names=SENTIMENT_LABELS,
    id_names=TWITTER_SENTIMENT_IDS,
    synonyms=SENTIMENT_SYNONYMS,
)


def topic_spec(names: Sequence[str] = TWITTER_TOPICS) -> LabelSpec:
    """Topic labels: ids in data files index ``names`` directly."""
    return LabelSpec(names=tuple(names), id_names=tuple(names), synonyms={})


def load_table(
    path: str | Path,
    text_col: str = TEXT,
    label_col: str | None = LABEL,
    extra_cols: Sequence[str] = (),
) -> pd.DataFrame:
    """Read CSV/TSV, JSON Lines or Parquet by suffix; return its text (and label, and
    ``extra_cols``) columns as-is.

    Raises DataError for unreadable files, missing columns and empty or non-string texts.
    """
    file = str(path)
    frame = _read_any(Path(path))
    wanted = [text_col] + ([label_col] if label_col else []) + list(extra_cols)
    for column in wanted:
        if column not in frame.columns:
            raise DataError(file, f"no such column (columns: {list(frame.columns)})", column=column)
    frame = frame[wanted].reset_index(drop=True)
    _check_texts(frame[text_col], file, text_col)
    if label_col:
        missing = np.flatnonzero(frame[label_col].isna().to_numpy())
        if missing.size:
            raise DataError(file, "empty label", row=int(missing[0]) + 1, column=label_col)
    return frame.rename(columns={text_col: TEXT, **({label_col: LABEL} if label_col else {})})


def _read_any(path: Path) -> pd.DataFrame:
    suffix = "".join(path.suffixes[-2:]).lower()
    if not path.is_file():
        raise DataError(str(path), "file not found")
    try:
        if suffix.endswith((".jsonl", ".ndjson", ".json")):
            return pd.read_json(path, lines=not suffix.endswith(".json") or _is_lines(path))
        if suffix.endswith(".parquet"):
            return pd.read_parquet(path)
        sep = "\t" if suffix.endswith(".tsv") else ","
        return pd.read_csv(path, sep=sep, dtype=object, keep_default_na=False, na_values=[""])
    except (ValueError, ImportError, OSError) as exc:
        match = _LINE_IN_ERROR.search(str(exc))
        row = int(match.group(1)) - 1 if match else None
        raise DataError(str(path), f"unreadable ({exc})".replace("\n", " "), row=row) from exc


def _is_lines(path: Path) -> bool:
    with path.open("rb") as handle:
        return not handle.read(64).lstrip().startswith(b"[")


def _check_texts(texts: pd.Series, file: str, column: str) -> None:
    for i, value in enumerate(texts.tolist()):
        if not isinstance(value, str) or not value.strip():
            problem = "empty text" if _is_blank(value) else f"text is {type(value).__name__}"
            raise DataError(file, problem, row=i + 1, column=column)


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value == ""


def map_labels(
    values: Sequence[object], spec: LabelSpec, file: str, column: str = LABEL
) -> np.ndarray:
    """Label ids (indices into ``spec.names``) for names, synonyms or data-file ids.

    Integers (or digit strings) are data-file ids and go through ``spec.id_names``; strings are
    matched case-insensitively against names and synonyms. Raises DataError naming the row.
    """
    table = spec.lookup()
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        out[i] = _one_label(value, spec, table, where=(file, column, i + 1))
    return out


def _one_label(
    value: object, spec: LabelSpec, table: dict[str, int], *, where: tuple[str, str, int]
) -> int:
    file, column, row = where
    as_id = _as_int(value)
    if as_id is not None:
        if 0 <= as_id < len(spec.id_names):
            return spec.names.index(spec.id_names[as_id])
        raise DataError(
            file,
            f"label id {as_id} out of range 0..{len(spec.id_names) - 1}",
            row=row,
            column=column,
        )
    if isinstance(value, str) and value.strip().lower() in table:
        return table[value.strip().lower()]
    raise DataError(
        file, f"unknown label {value!r} (known: {', '.join(spec.names)})", row=row, column=column
    )


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def prepare(frame: pd.DataFrame, spec: LabelSpec, file: str) -> pd.DataFrame:
    """Cleaned text, label ids and the dedup key; drops rows whose text cleans to nothing."""
    labels = map_labels(frame[LABEL].tolist(), spec, file)
    texts = [normalise(str(t)) for t in frame[TEXT].tolist()]
    out = pd.DataFrame({TEXT: texts, LABEL: labels, KEY: [dedup_key(t) for t in texts]})
    return out[out[TEXT].str.len() > 0].reset_index(drop=True)


def dedup(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep one row per dedup key, with its most common label; counts of what was merged."""
    exact = int(frame.duplicated(subset=[TEXT]).sum())
    conflicting = int((frame.groupby(KEY)[LABEL].nunique() > 1).sum())
    label = frame.groupby(KEY, sort=False)[LABEL].agg(lambda s: s.value_counts().index[0])
    first = frame.drop_duplicates(subset=[KEY]).set_index(KEY)
    first[LABEL] = label
    out = first.reset_index()[[TEXT, LABEL, KEY]]
    stats = {
        "exact": exact,
        "normalised": len(frame) - len(out) - exact,
        "conflicting": conflicting,
    }
    return out, stats


def leakage(train: pd.DataFrame, other: pd.DataFrame) -> int:
    """How many distinct dedup keys of ``other`` also occur in ``train``."""
    return len(set(other[KEY]) & set(train[KEY]))


def grouped_split(
    frame: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified holdout by label, grouped by dedup key (a key never spans both sides).

    Each label stratum sends ``round(fraction * groups)`` of its groups to the holdout, at least
    one when the stratum has two or more groups. Returns ``(train, holdout)``.
    """
    if fraction <= 0:
        return frame.reset_index(drop=True), frame.iloc[0:0]
    rng = np.random.default_rng(seed)
    group_label = frame.groupby(KEY, sort=True)[LABEL].agg(lambda s: s.value_counts().index[0])
    held: set[str] = set()
    for _, keys in group_label.groupby(group_label):
        names = keys.index.to_numpy()
        take = round(fraction * len(names)) if len(names) > 1 else 0
        take = max(take, 1) if len(names) > 1 else 0
        held.update(rng.permutation(names)[:take].tolist())
    mask = frame[KEY].isin(held).to_numpy()
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
