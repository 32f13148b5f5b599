"""Resume from a checkpoint gives the same next step as the uninterrupted run (CPU, same seed); a kill -9 and
resume logs every step once and leaves nothing of the killed run behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from openrlhf.trainer.local_cluster import end_leftovers_of_dead_runs, session_processes

from .helpers import model_states, read_metrics, run_training, same_weights, small_run_args, with_reward_func

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


# Two policy ranks in Ray actors, and one self-generating rank in the driver's process (train.worker_mode).
LAYOUTS = {
    "ray-2-ranks": (),
    "in-driver": ("--actor.num_gpus_per_node", "1", "--train.colocate_all", "true", "--train.worker_mode", "in_driver"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_resumed_step_equals_the_uninterrupted_step(ray_cluster, task, tmp_path, layout):
    """Run 2 steps saving every step; resume a new run from the step-1 checkpoint; step 2 must match.

    The step-1 checkpoint of the uninterrupted run holds exactly what a run stopped after step 1 would
    save (policy, optimizer, scheduler, worker RNG, prompt position, KL controller), so it stands for it.
    """
    extra = (*with_reward_func(task), *LAYOUTS[layout])
    full = tmp_path / "full"
    run_training(small_run_args(task, full, *extra, "--ckpt.interval", "1", "--ckpt.keep", "3"))
    resumed = tmp_path / "resumed"
    shutil.copytree(full / "ckpt" / "global_step1", resumed / "ckpt" / "global_step1")
    # the killed run's log: it got to log step 2 (and tore a line) before dying, after the step-1 checkpoint
    (resumed / "metrics.jsonl").write_text((full / "metrics.jsonl").read_text() + '{"step": 3, "rew')
    summary = run_training(small_run_args(task, resumed, *extra, "--ckpt.load_enable", "true"))
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


@pytest.mark.parametrize(
    "mode",
    # async outside the suite (-m bench): its saved batches' exact resume is tests/trainer/test_e2e_async.py's,
    # and an async run that loses its parts and goes on is tests/trainer/test_e2e_multinode.py's
    ["sync", pytest.param("async", marks=pytest.mark.bench)],
)
def test_kill_9_then_resume_logs_each_step_once_and_ends_the_killed_runs_processes(task, tmp_path, mode):
    """The driver is SIGKILLed mid-run; ``--ckpt.load_enable`` resumes from its last checkpoint: metrics.jsonl has
    exactly one row per step (the killed run's rows up to the checkpoint, the rest logged again once), and no
    process of the killed run's Ray survives the resumed run."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="rk", dir="/tmp"))  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    out = tmp_path / "run"
    extra = ("--train.async_enable", "true", "--train.max_staleness", "1") if mode == "async" else ()
    args = small_run_args(
        task, out, *with_reward_func(task), *extra, "--ckpt.interval", "1", "--ckpt.keep", "2", steps=4
    )
    command = [sys.executable, "-m", "openrlhf.cli.train", *args]
    try:
        log = (tmp_path / "killed.log").open("w")
        first = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 400
            while time.monotonic() < deadline and first.poll() is None:
                if (out / "metrics.jsonl").is_file() and len(read_metrics_tolerant(out)) >= 3:
                    break
                time.sleep(0.2)
            assert first.poll() is None, (
                f"the first run ended before it was killed: {(tmp_path / 'killed.log').read_text()[-3000:]}"
            )
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
            log.close()
        killed_rows = read_metrics_tolerant(out)
        assert [r["step"] for r in killed_rows][:3] == [1, 2, 3]
        sessions = [p.parent for p in (ray_tmp / "ray").glob("session_2*/openrlhf_driver.json")]
        assert len(sessions) == 1, sessions
        killed_session = sessions[0]
        time.sleep(3)  # Ray's reaper ends what it can; its agents outlive the driver
        assert session_processes(killed_session), "nothing of the killed run survived: this test checks nothing"

        resumed = subprocess.run(
            [*command, "--ckpt.load_enable", "true"], env=env, capture_output=True, text=True, timeout=600
        )
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        assert "resum" in (resumed.stdout + resumed.stderr).lower()
        steps = [r["step"] for r in read_metrics(out)]
        assert steps == [1, 2, 3, 4], steps  # each step exactly once, none lost
        if mode == "async":  # the resumed run trained the checkpoint's saved batch first, within the bound
            assert [r["async/staleness"] for r in read_metrics(out)] == [0.0, 1.0, 1.0, 1.0]
        assert session_processes(killed_session) == []  # the resumed run ended the killed run's leftovers
        assert (killed_session / "openrlhf_driver.ended.json").is_file()
    finally:
        end_leftovers_of_dead_runs(ray_tmp / "ray")  # whatever the outcome, nothing of this test stays
        shutil.rmtree(ray_tmp, ignore_errors=True)


def read_metrics_tolerant(out_dir: Path) -> list[dict]:
    """metrics.jsonl as a killed run left it: a torn last line is skipped."""
    rows = []
    for line in (out_dir / "metrics.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def test_checkpoints_written_in_the_background_hold_the_same_state(ray_cluster, task, tmp_path):
    """ckpt.async_save: the ranks write while the next step generates. Each checkpoint holds the weights and
    driver state of its own step (the same as one written in the foreground), and the run logs the same."""
    from openrlhf.trainer.checkpoint_io import load_driver_state

    extra = (*with_reward_func(task), "--ckpt.interval", "1", "--ckpt.keep", "3")
    runs = {}
    for name, flags in {"foreground": (), "background": ("--ckpt.async_save", "true")}.items():
        out = tmp_path / name
        run_training(small_run_args(task, out, *extra, *flags, steps=3))
        runs[name] = out
    for step in (1, 2, 3):
        a, b = (runs[n] / "ckpt" / f"global_step{step}" for n in ("foreground", "background"))
        assert same_weights(model_states(a), model_states(b)), f"step {step}: the weights differ"
        state_a, state_b = load_driver_state(a, restore_rng=False), load_driver_state(b, restore_rng=False)
        assert state_a["step"] == state_b["step"] == step and state_a["stream"] == state_b["stream"]
    rows = {n: read_metrics(runs[n]) for n in runs}
    assert [r["reward/mean"] for r in rows["foreground"]] == [r["reward/mean"] for r in rows["background"]]
    assert all("timing/checkpoint" in r for r in rows["background"][:2])
