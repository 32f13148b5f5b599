"""Atomic checkpoint directories, rotation, the latest complete checkpoint, driver and RNG state."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from openrlhf.trainer.checkpoint_io import (
    CheckpointError,
    atomic_directory,
    capture_rng_state,
    checkpoint_dir,
    checkpoint_step,
    latest_checkpoint,
    list_checkpoints,
    load_driver_state,
    restore_rng_state,
    rotate_checkpoints,
    save_driver_state,
)


def save(root, step, payload="weights"):
    with atomic_directory(checkpoint_dir(root, step)) as tmp:
        (tmp / "model.bin").write_text(f"{payload}-{step}")
        save_driver_state(tmp, {"step": step, "consumed_prompts": step * 8, "history": [{"kl/mean": math.nan}]})
    return checkpoint_dir(root, step)


def test_atomic_directory_writes_then_renames(tmp_path):
    final = save(tmp_path, 3)
    assert (final / "model.bin").read_text() == "weights-3" and (final / "complete").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["global_step3"]
    assert checkpoint_step(final) == 3


def test_failure_leaves_previous_checkpoint_intact(tmp_path):
    save(tmp_path, 5, payload="old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_directory(checkpoint_dir(tmp_path, 5)) as tmp:
        (tmp / "model.bin").write_text("half")
        raise RuntimeError("disk full")
    assert (checkpoint_dir(tmp_path, 5) / "model.bin").read_text() == "old-5"
    assert [p.name for p in tmp_path.iterdir()] == ["global_step5"]  # no temp leftovers


def test_resaving_a_step_replaces_it(tmp_path):
    save(tmp_path, 2, payload="first")
    save(tmp_path, 2, payload="second")
    assert (checkpoint_dir(tmp_path, 2) / "model.bin").read_text() == "second-2"
    assert [p.name for p in tmp_path.iterdir()] == ["global_step2"]


def test_latest_ignores_incomplete_and_foreign_dirs(tmp_path):
    assert latest_checkpoint(tmp_path / "none") is None
    for step in (2, 10, 4):
        save(tmp_path, step)
    (tmp_path / "global_step20").mkdir()  # a crash before the complete marker (written by hand)
    (tmp_path / "notes").mkdir()
    assert latest_checkpoint(tmp_path) == checkpoint_dir(tmp_path, 10)
    assert [checkpoint_step(p) for p in list_checkpoints(tmp_path)] == [2, 4, 10]


def test_rotation_keeps_the_newest_and_cleans_dead_leftovers(tmp_path):
    for step in (1, 2, 3, 4):
        save(tmp_path, step)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".tmp-global_step5-{dead.pid}-0123abcd"
    stale.mkdir()
    live = tmp_path / ".tmp-global_step6-1-0123abcd"  # pid 1 is alive
    live.mkdir()
    removed = rotate_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == sorted(["global_step1", "global_step2", stale.name])
    assert [checkpoint_step(p) for p in list_checkpoints(tmp_path)] == [3, 4]
    assert live.is_dir()
    with pytest.raises(ValueError, match="ckpt.keep"):
        rotate_checkpoints(tmp_path, keep=0)


def draw() -> tuple:
    return random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(3).tolist()


def test_rng_state_round_trip():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = capture_rng_state()
    expected = draw()
    draw()
    restore_rng_state(state)
    assert draw() == expected
    with pytest.raises(CheckpointError, match="RNG state is malformed"):
        restore_rng_state({"python": {}})


def test_driver_state_round_trip_restores_rng(tmp_path):
    torch.manual_seed(0)
    directory = save(tmp_path, 7)
    after_save = draw()
    draw()
    state = load_driver_state(directory)
    assert state["step"] == 7 and state["consumed_prompts"] == 56
    assert math.isnan(state["history"][0]["kl/mean"])  # metrics with NaN survive the round trip
    assert draw() == after_save
    plain = load_driver_state(directory, restore_rng=False)
    assert plain["rng"] == state["rng"]


def test_driver_state_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"driver_state.json not found"):
        load_driver_state(tmp_path)
    (tmp_path / "driver_state.json").write_text("{\n  bad")
    with pytest.raises(CheckpointError, match=r"driver_state.json:2: not valid JSON"):
        load_driver_state(tmp_path)
    with pytest.raises(CheckpointError, match="not JSON-serialisable"):
        save_driver_state(tmp_path, {"step": 1, "tensor": torch.zeros(1)})
    assert not list(tmp_path.glob(".tmp-*"))
