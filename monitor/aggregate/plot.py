"""``finmon backtest --plot``: the series, the learned baseline and the alert spans."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from monitor.aggregate.backtest import BacktestResult
from monitor.aggregate.windows import KeyId

MAX_PANELS = 4


def _panels(result: BacktestResult) -> list[KeyId]:
    """Keys with alerts first (most alerts first), then the overall key, at most MAX_PANELS."""
    counts: dict[KeyId, int] = {}
    for span in result.spans:
        key = (span.key_kind, span.key)
        counts[key] = counts.get(key, 0) + 1
    keys = sorted(counts, key=lambda k: -counts[k])
    for fallback in (("overall", "all"), *result.series):
        if fallback in result.series and fallback not in keys:
            keys.append(fallback)
    return [k for k in keys if k in result.series][:MAX_PANELS]


def plot_backtest(result: BacktestResult, out: Path) -> Path:
    """Write a PNG with one panel per key. Needs matplotlib (the ``dev`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = _panels(result)
    fig, axes = plt.subplots(
        max(1, len(keys)), 1, figsize=(11, 2.6 * max(1, len(keys))), sharex=True, squeeze=False
    )
    label = {"series": "items per window", "values": "value"}.get(result.mode, "negative share")
    for ax, key in zip(axes[:, 0], keys, strict=False):
        points = result.series[key]
        times = [datetime.fromtimestamp(p[0] / 1000, UTC) for p in points]
        ax.plot(times, [p[1] for p in points], lw=0.8, label=label)
        ax.plot(times, [p[2] for p in points], lw=1.2, ls="--", label="baseline")
        for span in result.spans:
            if (span.key_kind, span.key) != key:
                continue
            end = span.end_ms if span.end_ms is not None else points[-1][0] + result.window_ms
            color = "tab:red" if span.severity == "critical" else "tab:orange"
            ax.axvspan(
                datetime.fromtimestamp(span.start_ms / 1000, UTC),
                datetime.fromtimestamp(end / 1000, UTC),
                color=color,
                alpha=0.25,
            )
        ax.set_title(f"{key[0]}={key[1]}", fontsize=9, loc="left")
        ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
