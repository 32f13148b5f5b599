"""The hybrid engine on CPU: engines colocated with the policy ranks, weights shared through IPC (shared memory
here, CUDA IPC on GPUs), engines and DeepSpeed states put to sleep around the phases that do not need them;
and its one-process form, where the policy ranks generate with the weights they train (in_process)."""

from __future__ import annotations

from .helpers import config_from, hybrid_recording_trainer_class, read_metrics, small_run_args, with_reward_func
from .test_e2e_runs import _local_greedy


def _colocated_run(task, out, *extra: str):
    """Two steps with two colocated engines at a large lr; returns the recording trainer and the metrics."""
    args = small_run_args(
        task, out, *with_reward_func(task), "--train.colocate_all", "true", "--vllm.num_engines", "2", *extra
    )
    trainer = hybrid_recording_trainer_class()(config_from([*args, "--train.learning_rate", "3e-3"]))
    trainer.probe_prompts = 4
    trainer.fit()
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    return trainer, rows


def _assert_engines_serve_the_trained_policy(trainer, out, task) -> None:
    final = _local_greedy(out / "final_model", trainer.probe, trainer.cfg)
    initial = _local_greedy(task["model"], trainer.probe, trainer.cfg)
    assert trainer.engine_greedy == final, "the colocated engines do not generate what the exported policy does"
    assert trainer.engine_greedy != initial


def test_colocated_step_shares_weights_by_ipc_and_sleeps_both_sides(ray_cluster, task, tmp_path):
    out = tmp_path / "run"
    trainer, rows = _colocated_run(
        task, out, "--rollout.weight_sync", "ipc", "--vllm.enable_sleep", "true", "--ds.enable_sleep", "true"
    )
    assert rows[-1]["policy/optimizer_steps"] == 2.0
    assert trainer.push_mode == {"mode": "ipc", "engines_sleep": True, "policy_sleeps": True}
    # Each step: the engines sleep after generating and wake before the push; the policy sleeps after it.
    for state in trainer.engine_memory:
        assert state["sleeps"] >= 2 and state["wakes"] >= 2 and not state["asleep"]
    for state in trainer.policy_memory:
        assert state["sleeps"] >= 3 and state["wakes"] >= 2  # the initial push, then one per step
    _assert_engines_serve_the_trained_policy(trainer, out, task)


def test_colocated_hf_engines_generate_in_the_policy_process(ray_cluster, task, tmp_path):
    """auto with colocate_all and HF under ZeRO-2: the policy ranks are the engines; no weights travel, yet
    they generate what the exported policy generates (and no longer what the initial model does)."""
    out = tmp_path / "run"
    trainer, rows = _colocated_run(task, out)
    assert trainer.push_mode == {"mode": "in_process", "engines_sleep": False, "policy_sleeps": False}
    assert trainer.engine_pids == trainer.policy_pids  # the engines are the policy ranks
    assert all(r["timing/weight_sync"] < 0.05 for r in rows)
    _assert_engines_serve_the_trained_policy(trainer, out, task)
