"""metrics.jsonl, TensorBoard, the progress bar, and the run summary."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
from openrlhf_helpers import summarize_metrics
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from openrlhf.config import LoggerConfig
from openrlhf.trainer.metrics import MetricsLogger, read_metrics, write_summary


def test_jsonl_lines_are_flushed_json_safe_and_typed(tmp_path):
    logger = MetricsLogger(tmp_path, LoggerConfig(progress_bar=False), total_steps=3)
    logger.log(1, {"reward/mean": torch.tensor(0.25), "kl/mean": np.float32(0.5), "loss": float("nan")})
    # flushed before close: a crash after this line loses nothing
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert first == {"step": 1, "reward/mean": 0.25, "kl/mean": 0.5, "loss": None}
    logger.log(2, {"reward/mean": 0.75, "grad_norm": float("inf"), "note": "resumed", "lengths": torch.tensor([3, 4])})
    logger.close()
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records[1] == {"step": 2, "reward/mean": 0.75, "grad_norm": None, "note": "resumed", "lengths": [3, 4]}


def test_tensorboard_scalars_are_written(tmp_path):
    tb_dir = tmp_path / "tb"
    with MetricsLogger(tmp_path, LoggerConfig(progress_bar=False, tensorboard_dir=str(tb_dir)), total_steps=2) as log:
        log.log(1, {"reward/mean": 0.1, "note": "text is skipped", "loss": float("nan")})
        log.log(2, {"reward/mean": 0.4})
    events = EventAccumulator(str(tb_dir))
    events.Reload()
    assert events.Tags()["scalars"] == ["reward/mean"]
    points = events.Scalars("reward/mean")
    assert [p.step for p in points] == [1, 2]
    assert [p.value for p in points] == pytest.approx([0.1, 0.4])


def test_progress_bar_shows_reward_kl_and_step_time(tmp_path, capsys):
    with MetricsLogger(tmp_path, LoggerConfig(jsonl=False), total_steps=4) as log:
        log.log(1, {"reward/mean": 0.123456, "kl/mean": 0.01, "timing/step": 1.5})
        log.log(2, {"reward/mean": 0.5, "kl/mean": 0.02, "timing/step": 1.25})
        assert log._bar.n == 2
    err = capsys.readouterr().err
    assert "2/4" in err and "reward=0.5" in err and "kl=0.02" in err and "step_s=1.25" in err
    assert not (tmp_path / "metrics.jsonl").exists()  # logger.jsonl: false


def test_missing_wandb_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # what an uninstalled package looks like to import
    with pytest.raises(RuntimeError, match="logger.wandb_project is set .* pip install wandb"):
        MetricsLogger(tmp_path, LoggerConfig(wandb_project="demo", progress_bar=False), total_steps=1)


def test_read_metrics_names_the_bad_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "a": 1}\n{"step": 2, "a": \n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON line"):
        read_metrics(path)
    path.write_text('{"a": 1}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:1: .* 'step' key"):
        read_metrics(path)
    with pytest.raises(FileNotFoundError, match="nothere.jsonl"):
        read_metrics(tmp_path / "nothere.jsonl")


def test_summary_is_written_and_printed(tmp_path, capsys):
    records = [{"step": 1, "reward/mean": 0.1, "kl/mean": None}, {"step": 2, "reward/mean": 0.3, "kl/mean": 0.02}]
    stats = summarize_metrics(records)
    assert stats["steps"] == 2 and stats["last_step"] == 2
    assert stats["reward/mean"] == {"first": 0.1, "last": 0.3, "min": 0.1, "max": 0.3}
    assert stats["kl/mean"] == {"first": 0.02, "last": 0.02, "min": 0.02, "max": 0.02}
    path = write_summary(tmp_path, {**stats, "eval/accuracy_after": 0.875, "broken": math.nan})
    saved = json.loads(path.read_text())
    assert saved["eval/accuracy_after"] == 0.875 and saved["broken"] is None
    assert saved["reward/mean"]["last"] == 0.3
    out = capsys.readouterr().out
    assert "Run summary" in out and "eval/accuracy_after" in out and "0.875" in out


def test_resume_keeps_each_step_once_and_fills_from_the_checkpoint_history(tmp_path):
    from openrlhf.trainer.metrics import prepare_metrics_for_resume, read_metrics

    path = tmp_path / "metrics.jsonl"
    # steps 2-4 of a killed run (step 1 lost with an older output folder), step 3 logged twice, a torn line
    path.write_text(
        '{"step": 2, "r": 0.2}\n{"step": 3, "r": 0.3}\n{"step": 3, "r": 0.33}\n{"step": 4, "r": 0.4}\n{"step": 5, "r'
    )
    history = [{"step": 1, "r": 0.1}, {"step": 2, "r": 99.0}, {"step": 3, "r": float("nan")}]
    prepare_metrics_for_resume(tmp_path, 3, history)
    assert read_metrics(path) == [{"step": 1, "r": 0.1}, {"step": 2, "r": 0.2}, {"step": 3, "r": 0.33}]
    fresh = tmp_path / "fresh"  # no file yet: the checkpoint's history is the log so far
    fresh.mkdir()
    prepare_metrics_for_resume(fresh, 1, history)
    assert read_metrics(fresh / "metrics.jsonl") == [{"step": 1, "r": 0.1}]
