"""Faults in a running training: non-finite updates, a reward server that is down or dies mid-run."""

from __future__ import annotations

import threading
import time

import pytest

from openrlhf.cli.train import main as train_main
from openrlhf.trainer.checkpoint_io import COMPLETE_MARKER, list_checkpoints
from openrlhf.trainer.driver import FAULT_INJECTION_ENV, TrainingStopped
from openrlhf.trainer.local_reward_server import LocalRewardServer
from openrlhf.utils.loopback_server import find_free_port

from .helpers import (
    SMALL_RECIPES,
    model_states,
    read_metrics,
    run_training,
    same_weights,
    small_run_args,
    with_reward_func,
)

# the same guards with generation overlapped with training (train.async_enable)
MODES = {"sync": (), "async": ("--train.async_enable", "true", "--train.max_staleness", "1")}


@pytest.mark.parametrize("mode", list(MODES))
def test_nonfinite_updates_are_skipped_then_too_many_in_a_row_stop_the_run(
    ray_cluster, task, tmp_path, capsys, monkeypatch, mode
):
    """Injected NaN at step 2 is skipped and the run goes on; NaN at 4 and 5 (K=2 in a row) stops it (exit 3)."""
    out = tmp_path / "run"
    args = small_run_args(
        task,
        out,
        *with_reward_func(task),
        *MODES[mode],
        "--train.max_nonfinite_skips",
        "2",
        "--ckpt.interval",
        "1",
        "--ckpt.keep",
        "10",
        steps=6,
    )
    monkeypatch.setenv(FAULT_INJECTION_ENV, "nonfinite_at_steps=2,4,5")
    code = train_main(args)
    err = capsys.readouterr().err
    assert code == 3, err
    stop_lines = [line for line in err.splitlines() if line.startswith("openrlhf-train: stopped:")]
    assert len(stop_lines) == 1, err
    assert "2 non-finite updates in a row" in stop_lines[0] and "train.max_nonfinite_skips=2" in stop_lines[0]
    assert "global_step5" in stop_lines[0]
    assert "Traceback" not in err

    rows = {r["step"]: r for r in read_metrics(out)}
    assert sorted(rows) == [1, 2, 3, 4, 5]
    skipped = {s: rows[s]["policy/nonfinite_skipped_steps"] for s in rows}
    assert skipped == {1: 0.0, 2: 1.0, 3: 0.0, 4: 1.0, 5: 1.0}
    assert rows[5]["policy/optimizer_steps"] == 2.0

    ckpts = {int(p.name.removeprefix("global_step")): p for p in list_checkpoints(out / "ckpt")}
    assert sorted(ckpts) == [1, 2, 3, 4, 5]
    weights = {s: model_states(ckpts[s]) for s in ckpts}
    assert same_weights(weights[1], weights[2]), "the skipped step 2 changed the parameters"
    assert not same_weights(weights[2], weights[3]), "step 3 (finite) did not train"
    assert same_weights(weights[3], weights[5]), "the skipped steps 4-5 changed the parameters"
    assert not (out / "final_model").exists()


def test_reward_server_down_at_start_is_one_clear_line(ray_cluster, task, tmp_path, capsys):
    url = f"http://127.0.0.1:{find_free_port()}/get_reward"
    args = small_run_args(
        task, tmp_path / "run", "--reward.remote_url", f"[{url}]", "--reward.retries", "1", "--reward.backoff", "0.05"
    )
    t0 = time.monotonic()
    code = train_main(args)
    err = capsys.readouterr().err
    assert code == 1, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("openrlhf-train: error:") and url in lines[0] and "not reachable" in lines[0]
    assert time.monotonic() - t0 < 30, "the driver should fail before starting its workers"


@pytest.mark.parametrize("mode", list(MODES))
def test_reward_server_killed_mid_run_saves_the_last_step_and_names_the_url(ray_cluster, task, tmp_path, mode):
    out = tmp_path / "run"
    server = LocalRewardServer(SMALL_RECIPES, log_dir=tmp_path / "server").start()
    metrics = out / "metrics.jsonl"
    killed = threading.Event()

    def kill_after_first_step() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if metrics.exists() and metrics.read_text().strip():
                server.stop()
                killed.set()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_after_first_step, daemon=True)
    watcher.start()
    args = small_run_args(
        task,
        out,
        "--reward.remote_url",
        f"[{server.url}]",
        "--reward.retries",
        "2",
        "--reward.backoff",
        "0.05",
        "--reward.timeout",
        "10",
        *MODES[mode],
        steps=6,
    )
    try:
        with pytest.raises(TrainingStopped) as info:
            run_training(args)
    finally:
        server.stop()
        watcher.join(timeout=5)
    assert killed.is_set()
    message = str(info.value)
    assert server.url in message and "after 3 attempts" in message, message

    done = len(read_metrics(out))
    assert 1 <= done < 6
    ckpt = out / "ckpt" / f"global_step{done}"
    assert (ckpt / COMPLETE_MARKER).is_file(), sorted(p.name for p in (out / "ckpt").iterdir())
    assert str(ckpt) in message and "--ckpt.load_enable" in message
