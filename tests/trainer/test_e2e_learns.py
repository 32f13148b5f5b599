"""The embedded demo's pipeline learns: a shorter run of configs/demo_text.yaml raises reward and held-out
accuracy (fixed seeds). It is the demo with 12 GRPO steps instead of 30 and 100 held-out sums instead of 200
(the SFT warm start is the demo's: a shorter one leaves the step-by-step form unlearnt), about 8 minutes.

The pipeline is the one `openrlhf-train` runs: build the tiny LM, SFT-warm it on generated chained sums, then
GRPO with the reward server on loopback, greedy held-out accuracy before and after. The warm start answers
most sums in one go (poorly on unseen sums) and some step by step (well); GRPO has to find the step-by-step
answers in its own samples. A loop whose gradient, weight sync, reward routing or advantage sign were broken
would leave held-out accuracy where the warm start put it.
"""

from __future__ import annotations

import pytest

from openrlhf.config_loading import load_config

from .helpers import REPO, read_metrics


@pytest.mark.timeout(1800)  # about 8 minutes on an idle 2-core machine; the suite's default limit is 900 s
def test_demo_pipeline_raises_reward_and_heldout_accuracy(ray_cluster, tmp_path):
    from openrlhf.demos.pipeline import run_demo

    work = tmp_path / "demo"
    cfg, _ = load_config(
        [
            "--demo.work_dir",
            str(work),
            "--train.output_dir",
            str(work / "out"),
            "--demo.num_heldout",
            "100",
            "--train.max_steps",
            "12",
            "--logger.progress_bar",
            "false",
        ],
        default_config=str(REPO / "configs" / "demo_text.yaml"),
    )
    summary = run_demo(cfg)
    before, after = summary["heldout_accuracy_before"], summary["heldout_accuracy_after"]
    rewards = [row["reward/mean"] for row in read_metrics(work / "out") if "reward/mean" in row]
    print(f"held-out accuracy {before:.2f} -> {after:.2f}; reward per step {[round(r, 2) for r in rewards]}")
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.1, rewards
    assert after >= before + 0.15, summary
    assert (work / "out" / "summary.json").is_file() and (work / "out" / "learning_curves.png").is_file()
