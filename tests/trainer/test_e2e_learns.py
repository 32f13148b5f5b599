"""The pipeline learns: SFT warm start, then GRPO raises a reward the warm start rarely earns.

The warm start (openrlhf.trainer.sft on generated arithmetic) answers most prompts directly and some with worked
steps; the reward pays worked steps. A loop whose gradient, weight sync or advantage sign were broken would not
move the reward: with them right it rises within a dozen steps (fixed seeds).
"""

from __future__ import annotations

from .helpers import config_from, read_metrics, run_training

WORKED_STEPS_REWARD = """
def reward_func(queries, prompts, labels, **kw):
    # 1 when the response decomposes the operation into several steps ("a + b = c + d = e"), else 0
    return [1.0 if query[len(prompt):].count("=") > 1 else 0.0 for query, prompt in zip(queries, prompts)]
"""


def test_sft_then_grpo_raises_the_reward(ray_cluster, tmp_path, tiny_lm_path):
    from openrlhf.data.synthetic import write_arithmetic_task
    from openrlhf.trainer.sft import run_sft

    data = write_arithmetic_task(tmp_path / "data", 2400, 16, seed=0, difficulty=2, full_reasoning_prob=0.3)
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    sft = run_sft(
        config_from(
            [
                "--config",
                str(empty),
                "--actor.model_name_or_path",
                str(tiny_lm_path),
                "--data.train_paths",
                f"[{data['sft']}]",
                "--sft.output_dir",
                str(tmp_path / "sft"),
                "--sft.learning_rate",
                "3e-3",
                "--sft.batch_size",
                "32",
                "--sft.micro_batch_size",
                "32",
                "--train.lr_warmup_ratio",
                "0.05",
                "--train.lr_scheduler",
                "cosine_with_min_lr",
                "--ds.zero_stage",
                "0",
                "--logger.progress_bar",
                "false",
            ]
        )
    )
    assert sft["sft_loss_last"] < sft["sft_loss_first"]

    reward = tmp_path / "worked_steps.py"
    reward.write_text(WORKED_STEPS_REWARD)
    out = tmp_path / "grpo"
    run_training(
        [
            "--config",
            str(empty),
            "--actor.model_name_or_path",
            sft["sft_model"],
            "--data.train_paths",
            f"[{data['train']}]",
            "--reward.reward_func",
            str(reward),
            "--train.output_dir",
            str(out),
            "--train.max_steps",
            "14",
            "--train.rollout_batch_size",
            "16",
            "--rollout.n_samples_per_prompt",
            "8",
            "--rollout.max_new_tokens",
            "48",
            "--train.train_batch_size",
            "64",
            "--train.micro_train_batch_size",
            "64",
            "--train.micro_rollout_batch_size",
            "64",
            "--train.learning_rate",
            "3e-4",
            "--ds.zero_stage",
            "0",
            "--logger.progress_bar",
            "false",
        ]
    )
    rewards = [row["reward/mean"] for row in read_metrics(out)]
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    print("worked-steps reward per step:", [round(r, 2) for r in rewards])
    assert last > first + 0.3, rewards
