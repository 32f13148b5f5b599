"""One policy rank that generates itself runs in the driver's process, without Ray (train.worker_mode auto),
and trains exactly as the same run with the worker in a Ray actor does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from .helpers import read_metrics, run_training, small_run_args, with_reward_func

ONE_RANK_HYBRID = ("--actor.num_gpus_per_node", "1", "--train.colocate_all", "true", "--train.learning_rate", "3e-3")
COMPARED = ("reward/mean", "response_length/mean", "policy/loss", "policy/grad_norm", "policy/entropy")


def _weights(model_dir) -> dict[str, torch.Tensor]:
    return load_file(str(next(model_dir.glob("*.safetensors"))))


def test_the_cli_runs_one_rank_hybrid_in_the_driver_without_starting_ray(task, tmp_path):
    out = tmp_path / "run"
    ray_tmp = tmp_path / "ray_tmp"
    ray_tmp.mkdir()
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    env.pop("RAY_ADDRESS", None)
    args = small_run_args(task, out, *with_reward_func(task), *ONE_RANK_HYBRID)
    proc = subprocess.run(
        [sys.executable, "-m", "openrlhf.cli.train", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "workers in the driver's process" in proc.stdout
    assert not list(ray_tmp.rglob("session_*")), "a Ray cluster was started"
    assert [r["step"] for r in read_metrics(out)] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["heldout_accuracy_after"] is not None
    assert _weights(out / "final_model")


def test_in_driver_trains_exactly_as_a_ray_actor_does(ray_cluster, task, tmp_path):
    runs = {}
    for mode in ("in_driver", "ray"):
        out = tmp_path / mode
        args = small_run_args(task, out, *with_reward_func(task), *ONE_RANK_HYBRID, "--train.worker_mode", mode)
        run_training(args)
        runs[mode] = (read_metrics(out), _weights(out / "final_model"))
    (rows_d, weights_d), (rows_r, weights_r) = runs["in_driver"], runs["ray"]
    for row_d, row_r in zip(rows_d, rows_r, strict=True):
        for key in COMPARED:
            assert abs(row_d[key] - row_r[key]) <= 1e-5 * max(1.0, abs(row_r[key])), (key, row_d[key], row_r[key])
    initial = _weights(task["model"])
    moved = max((weights_r[k].float() - initial[k].float()).abs().max().item() for k in initial)
    differ = max((weights_d[k].float() - weights_r[k].float()).abs().max().item() for k in weights_r)
    assert moved > 1e-4 and differ <= 1e-5 * moved, (moved, differ)
