"""The R1-Reward demo's pipeline, short (configs/demo_reward_model.yaml, small sizes; about 3 minutes).

Everything is real: the tiny VLM and the tiny judge LM are built and SFT-trained by DeepSpeed workers, the judge
is served by ``openrlhf-serve`` on loopback, the reward service (also on loopback) scores R1-Reward's preference
recipe and asks that judge for consistency over the OpenAI protocol, StableReinforce trains, and the held-out
pairs are judged in both orders with Voting@K before and after. The full demo's learning figures are in
docs/benchmarks.md; this run checks that every piece is wired: the served judge was asked during RL, the
evaluation saw every held-out pair in both orders, and the summary carries the figures.
"""

from __future__ import annotations

import json

import pytest

from openrlhf.config_loading import load_config

from .helpers import REPO, read_metrics

SHORT = {
    "demo.num_train": "320",
    "demo.num_heldout": "12",
    "demo.voting": "3",
    "demo.judge_num_train": "160",
    "demo.judge_epochs": "4",  # 20 steps: the judge answers with a digit (right or not)
    "sft.epochs": "10",  # 100 steps: the warm start answers in R1-Reward's format, so the judge gets asked
    "train.max_steps": "2",
    "train.rollout_batch_size": "8",
}


@pytest.mark.timeout(900)
def test_reward_model_demo_pipeline_short(ray_cluster, tmp_path):
    from openrlhf.demos.pipeline import run_demo

    work = tmp_path / "demo_rm"
    argv = ["--demo.work_dir", str(work), "--train.output_dir", str(work / "out"), "--logger.progress_bar", "false"]
    for key, value in SHORT.items():
        argv += [f"--{key}", value]
    cfg, _ = load_config(argv, default_config=str(REPO / "configs" / "demo_reward_model.yaml"))
    summary = run_demo(cfg)

    assert summary["pairwise_heldout_pairs"] == 12 and summary["pairwise_voting_k"] == 3
    for key in ("accuracy", "accuracy_voting", "position_consistency", "invalid_rate"):
        for when in ("before", "after"):
            value = summary[f"pairwise_{key}_{when}"]
            assert value is None or 0.0 <= value <= 1.0, (key, when, value)
    assert summary["pairwise_invalid_rate_before"] < 0.5, summary  # the warm start answers in R1-Reward's format
    for when in ("before", "after"):
        report = json.loads((work / f"eval_{when}.json").read_text())
        outputs = json.loads((work / f"eval_{when}_outputs.json").read_text())
        assert report["pairs"] == 12 and report["pairs_in_both_orders"] == 12
        orders = [[j["order"] for j in r["judgements"]] for r in outputs["results"]]
        assert orders == [["forward", "swapped"]] * 12
        assert all(len(j["outputs"]) == 3 for r in outputs["results"] for j in r["judgements"])

    # The served judge: asked through the reward service during RL, and measured on held-out judge examples.
    assert summary["rl_judge_calls"] > 0, summary
    assert summary["judge_heldout_examples"] == 32 and 0.0 <= summary["judge_agreement"] <= 1.0
    serve_log = (work / "serve-consistency-judge.log").read_text()
    assert "openrlhf.cli.serve" in serve_log
    server_cfg = (work / "reward_server.yaml").read_text()
    assert "consistency-judge" in server_cfg and "judge_consistency" in server_cfg

    metrics = read_metrics(work / "out")
    steps = [row for row in metrics if "reward/mean" in row]
    assert len(steps) == 2 and all("reward/consistency" in row for row in steps)
    assert all("adv_filter/zeroed_frac" in row for row in steps)  # StableReinforce's advantage filter ran
    assert (work / "out" / "summary.json").is_file()
