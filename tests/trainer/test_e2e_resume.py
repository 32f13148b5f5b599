"""Resume from a checkpoint gives the same next step as the uninterrupted run (CPU, same seed)."""

from __future__ import annotations

import shutil

from safetensors.torch import load_file

from .helpers import read_metrics, run_training, small_run_args, with_reward_func

COMPARED = (
    "reward/mean",
    "reward/std",
    "response_length/mean",
    "advantage/std",
    "policy/loss",
    "policy/entropy",
    "policy/grad_norm",
    "policy/lr",
    "policy/optimizer_steps",
)


def test_resumed_step_equals_the_uninterrupted_step(ray_cluster, task, tmp_path):
    """Run 2 steps saving every step; resume a new run from the step-1 checkpoint; step 2 must match.

    The step-1 checkpoint of the uninterrupted run holds exactly what a run stopped after step 1 would
    save (policy, optimizer, scheduler, worker RNG, prompt position, KL controller), so it stands for it.
    """
    full = tmp_path / "full"
    run_training(small_run_args(task, full, *with_reward_func(task), "--ckpt.interval", "1", "--ckpt.keep", "3"))
    resumed = tmp_path / "resumed"
    shutil.copytree(full / "ckpt" / "global_step1", resumed / "ckpt" / "global_step1")
    # the killed run's log: it got to log step 2 (and tore a line) before dying, after the step-1 checkpoint
    (resumed / "metrics.jsonl").write_text((full / "metrics.jsonl").read_text() + '{"step": 3, "rew')
    summary = run_training(small_run_args(task, resumed, *with_reward_func(task), "--ckpt.load_enable", "true"))
    assert summary["steps"] == 2
    # the log continues: every step exactly once, step 1 as the first run logged it, step 2 logged again
    assert [r["step"] for r in read_metrics(resumed)] == [1, 2]
    assert read_metrics(resumed)[0] == read_metrics(full)[0]
    assert (resumed / "learning_curves.png").is_file()

    expected = {r["step"]: r for r in read_metrics(full)}[2]
    got = {r["step"]: r for r in read_metrics(resumed)}[2]
    for key in COMPARED:
        assert got[key] == expected[key], f"{key}: resumed {got[key]} != uninterrupted {expected[key]}"
    assert expected["policy/grad_norm"] > 0  # the step trained something, so the equality means something

    a = load_file(str(full / "final_model" / "model.safetensors"))
    b = load_file(str(resumed / "final_model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] == b[name]).all(), f"final weights differ at {name}"
