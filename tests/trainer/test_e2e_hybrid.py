"""The hybrid engine on CPU: engines colocated with the policy ranks, weights shared through IPC (shared memory
here, CUDA IPC on GPUs), engines and DeepSpeed states put to sleep around the phases that do not need them."""

from __future__ import annotations

from .helpers import config_from, hybrid_recording_trainer_class, read_metrics, small_run_args, with_reward_func
from .test_e2e_runs import _local_greedy


def test_colocated_step_shares_weights_by_ipc_and_sleeps_both_sides(ray_cluster, task, tmp_path):
    out = tmp_path / "run"
    args = small_run_args(
        task,
        out,
        *with_reward_func(task),
        "--train.colocate_all",
        "true",
        "--vllm.num_engines",
        "2",
        "--vllm.enable_sleep",
        "true",
        "--ds.enable_sleep",
        "true",
        "--train.learning_rate",
        "3e-3",
    )
    trainer = hybrid_recording_trainer_class()(config_from(args))
    trainer.probe_prompts = 4
    trainer.fit()
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[-1]["policy/optimizer_steps"] == 2.0
    assert trainer.push_mode == {"mode": "ipc", "engines_sleep": True, "policy_sleeps": True}
    # Each step: the engines sleep after generating and wake before the push; the policy sleeps after it.
    for state in trainer.engine_memory:
        assert state["sleeps"] >= 2 and state["wakes"] >= 2 and not state["asleep"]
    for state in trainer.policy_memory:
        assert state["sleeps"] >= 3 and state["wakes"] >= 2  # the initial push, then one per step
    final = _local_greedy(out / "final_model", trainer.probe, trainer.cfg)
    initial = _local_greedy(task["model"], trainer.probe, trainer.cfg)
    assert trainer.engine_greedy == final, "the colocated engines do not generate what the exported policy does"
    assert trainer.engine_greedy != initial
