"""Learning curves from metrics.jsonl: reward, accuracy, KL and response length over steps, one PNG."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from openrlhf.trainer.metrics import read_metrics

# (panel title, y label, exact keys; the accuracy panel also takes any key containing "accuracy")
PANELS = (
    ("Reward", "mean reward", ("reward/mean",)),
    ("Accuracy", "accuracy", ("reward/accuracy",)),
    ("KL to reference", "mean KL", ("kl/mean",)),
    ("Response length", "tokens", ("response_length/mean",)),
)


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    steps, values = [], []
    for record in records:
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            steps.append(float(record["step"]))
            values.append(float(value))
    return steps, values


def ema(values: Sequence[float], alpha: float) -> list[float]:
    """Exponential moving average: ``s_0 = x_0``, ``s_t = alpha * x_t + (1 - alpha) * s_{t-1}``."""
    out: list[float] = []
    for value in values:
        out.append(value if not out else alpha * value + (1 - alpha) * out[-1])
    return out


def panel_keys(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """The panels that have data: (title, y label, keys to draw)."""
    present = list(dict.fromkeys(k for r in records for k, v in r.items() if isinstance(v, (int, float))))
    panels = []
    for title, ylabel, keys in PANELS:
        chosen = [k for k in keys if k in present]
        if title == "Accuracy":
            chosen += [k for k in present if "accuracy" in k.lower() and k not in chosen]
        chosen = [k for k in chosen if _series(records, k)[0]]
        if chosen:
            panels.append((title, ylabel, chosen))
    return panels


def plot_learning_curves(metrics_jsonl: str | os.PathLike[str], out_png: str | os.PathLike[str]) -> Path:
    """Draw one panel per metric group that was logged and save a PNG (matplotlib's Agg canvas).

    Noisy per-step series get a smoothed line (EMA, ``alpha = 2 / (span + 1)``, span = steps / 10)
    over the faint raw one; sparse series (e.g. eval accuracy) are drawn with markers.
    """
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and leaves pyplot's backend alone

    records = read_metrics(metrics_jsonl)
    panels = panel_keys(records)
    if not panels:
        found = sorted({k for r in records for k in r if k != "step"})
        raise ValueError(
            f"{metrics_jsonl}: no metric to plot; expected reward/mean, an accuracy key, kl/mean or "
            f"response_length/mean, found: {', '.join(found) or 'nothing'}"
        )
    ncols = 2 if len(panels) > 1 else 1
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(6.4 * ncols, 3.8 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    total_steps = max(len(records), 1)
    for ax, (title, ylabel, keys) in zip(axes.flat, panels, strict=False):
        for index, key in enumerate(keys):
            steps, values = _series(records, key)
            color = f"C{index}"
            sparse = len(steps) < 0.5 * total_steps or len(steps) < 12
            if sparse:
                ax.plot(steps, values, marker="o", markersize=4, color=color, label=key)
                continue
            span = max(len(values) // 10, 2)
            ax.plot(steps, values, color=color, alpha=0.3, linewidth=1)
            ax.plot(steps, ema(values, 2 / (span + 1)), color=color, linewidth=2, label=f"{key} (EMA {span})")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(f"Learning curves ({Path(metrics_jsonl).parent.name or Path(metrics_jsonl).name})")
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    return out_png
