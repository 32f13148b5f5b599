"""Two GRPO steps on a real pretrained model: SmolLM2-135M-Instruct (Llama architecture, ChatML template, its
real tokenizer), generated arithmetic with a one-shot example turn (data.few_shot), rewarded by the reward server on
loopback (format + math accuracy). The learning run is a benchmark (docs/benchmarks.md), not a test."""

from __future__ import annotations

import pytest

from openrlhf.data.synthetic import write_arithmetic_task

from .helpers import read_metrics, run_training

ONE_SHOT = """
data:
  task_suffix: Put the final answer in <answer></answer> tags.
  few_shot:
    - {role: user, content: "What is 23 + 45? Put the final answer in <answer></answer> tags."}
    - {role: assistant, content: "<think>23 + 45 = 68</think><answer>68</answer>"}
"""


# ZeRO-2 with separate engine and policy; ZeRO-3 with everything on one device (the shards gathered for the weight
# sync), padding-free packed micro-batches (Llama's rotary positions from per-sample position ids) and micro-batches
# by token budget
SETUPS = {
    "zero2": ["--ds.zero_stage", "2"],
    "zero3-colocated-packed": [
        "--ds.zero_stage", "3",
        "--train.colocate_all", "true",
        "--ds.packing_samples", "true",
        "--train.dynamic_batch_enable", "true",
        "--train.max_tokens_per_gpu", "512",
    ],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "setup",
    [
        # outside the suite (-m bench runs it): the separate-engine layout runs on the tiny LM in the suite, and
        # SmolLM2's weights reach a separate engine in tests/rollout/test_vllm_cpu_engine.py
        pytest.param("zero2", marks=pytest.mark.bench),
        "zero3-colocated-packed",
    ],
)
def test_two_grpo_steps_on_smollm2(ray_cluster, smollm2_path, tmp_path, setup):
    paths = write_arithmetic_task(tmp_path / "data", 16, 4, 0, difficulty=3)
    out = tmp_path / "run"
    config = tmp_path / "smollm2.yaml"
    config.write_text(ONE_SHOT)
    args = [
        "--config", str(config),
        "--actor.model_name_or_path", str(smollm2_path),
        "--data.train_paths", f"[{paths['train']}]",
        "--data.eval_paths", f"[{paths['heldout']}]",
        "--reward.launch_local_server", "true",
        "--train.output_dir", str(out),
        "--train.max_steps", "2",
        "--train.rollout_batch_size", "2",
        "--rollout.n_samples_per_prompt", "4",
        "--rollout.max_new_tokens", "32",
        "--actor.num_gpus_per_node", "1",
        *SETUPS[setup],
        "--train.learning_rate", "1e-6",
        "--logger.progress_bar", "false",
    ]  # fmt: skip
    summary = run_training(args)
    assert summary["steps"] == 2
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert 0 < row["response_length/mean"] <= 32
        # a group with a spread of rewards moves the real model's parameters; all-equal groups have no advantage
        assert (row["policy/grad_norm"] > 0) == (row["advantage/std"] > 0), row
    assert any(row["advantage/std"] > 0 for row in rows), "no group had a spread of rewards: nothing was trained"
    # the reward server scored the real model's ChatML outputs: greedy held-out answers follow the one-shot turn
    assert summary["final_format"] > 0 and 0 <= summary["heldout_accuracy_before"] <= 1, summary
    assert (out / "final_model" / "config.json").is_file()
