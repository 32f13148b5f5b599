"""Learning-curve PNGs from a real metrics.jsonl."""

from __future__ import annotations

import json
import math
import random

import pytest
from matplotlib.image import imread

from openrlhf.config import LoggerConfig
from openrlhf.trainer.metrics import MetricsLogger
from openrlhf.trainer.plots import ema, panel_keys, plot_learning_curves


def write_run(tmp_path, steps: int = 60):
    rng = random.Random(0)
    with MetricsLogger(tmp_path, LoggerConfig(progress_bar=False), total_steps=steps) as log:
        for step in range(1, steps + 1):
            progress = 1 - math.exp(-step / 20)
            metrics = {
                "reward/mean": 0.2 + 0.6 * progress + rng.gauss(0, 0.05),
                "reward/accuracy": 0.1 + 0.7 * progress + rng.gauss(0, 0.05),
                "kl/mean": 0.002 * step + abs(rng.gauss(0, 0.005)),
                "response_length/mean": 40 - 15 * progress + rng.gauss(0, 2),
                "loss": rng.gauss(0, 1),
            }
            if step % 20 == 0:
                metrics["eval/accuracy"] = 0.1 + 0.7 * progress
            log.log(step, metrics)
    return tmp_path / "metrics.jsonl"


def test_png_has_the_four_panels(tmp_path):
    metrics = write_run(tmp_path)
    out = plot_learning_curves(metrics, tmp_path / "plots" / "learning_curves.png")
    image = imread(out)
    assert image.shape[0] >= 600 and image.shape[1] >= 1000  # 2 x 2 panels at 100 dpi
    assert image[..., :3].std() > 0.05  # something was drawn
    from openrlhf.trainer.metrics import read_metrics

    panels = panel_keys(read_metrics(metrics))
    assert [p[0] for p in panels] == ["Reward", "Accuracy", "KL to reference", "Response length"]
    assert panels[1][2] == ["reward/accuracy", "eval/accuracy"]


def test_only_logged_panels_are_drawn(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "reward/mean": s / 10, "kl/mean": None}) + "\n" for s in range(5)))
    out = plot_learning_curves(path, tmp_path / "curves.png")
    image = imread(out)
    assert image.shape[1] < 800  # a single panel
    path.write_text('{"step": 1, "loss": 0.5}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl: no metric to plot.*found: loss"):
        plot_learning_curves(path, tmp_path / "none.png")


def test_ema_formula():
    assert ema([1.0, 0.0, 0.0], 0.5) == [1.0, 0.5, 0.25]
