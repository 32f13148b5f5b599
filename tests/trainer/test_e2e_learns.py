"""The embedded demo's pipeline learns with the real vLLM engine (vLLM's CPU build): a shorter run of
configs/demo_text.yaml with ``--rollout.backend vllm`` raises reward and held-out accuracy (fixed seeds). It is the
demo with 12 GRPO steps instead of 30, 100 held-out sums instead of 200 and 4 SFT epochs instead of 5
(measured 0.21 -> 0.89), about 7 minutes. The HF engine's learning runs in the VLM
demo's test (test_e2e_vlm_learns.py) and in the full text demo (docs/benchmarks.md, both backends).

The trained checkpoint is then scored by ``openrlhf-eval`` through a vLLM engine split over two tensor-parallel
workers: its held-out accuracy must be the trainer's own final evaluation (one engine, one worker) within 3 rows.

The pipeline is the one `openrlhf-train` runs: build the tiny LM, SFT-warm it on generated chained sums, then
GRPO with the reward server on loopback, greedy held-out accuracy before and after. The warm start answers
most sums in one go (poorly on unseen sums) and some step by step (well); GRPO has to find the step-by-step
answers in its own samples. A loop whose gradient, weight sync, reward routing or advantage sign were broken
would leave held-out accuracy where the warm start put it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from openrlhf.config_loading import load_config

from .helpers import REPO, read_metrics


@pytest.mark.timeout(1800)  # about 8 minutes on an idle 2-core machine; the suite's default limit is 900 s
def test_demo_pipeline_raises_reward_and_heldout_accuracy(require_vllm_cpu, ray_cluster, tmp_path):
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
            "--sft.epochs",
            "4",
            "--train.max_steps",
            "12",
            "--logger.progress_bar",
            "false",
            "--rollout.backend",
            "vllm",
            "--vllm.enforce_eager",
            "true",
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
    assert all(row["policy/sampler_abs_log_prob_diff"] < 1e-3 for row in read_metrics(work / "out")), "sampler"

    # the trained model through openrlhf-eval on a vLLM engine split over 2 tensor-parallel workers
    report_dir = work / "eval_tp2"
    argv = [
        "--config", str(REPO / "configs" / "demo_text.yaml"),
        "--actor.model_name_or_path", summary["final_model"],
        "--data.eval_paths", f"[{work / 'data' / 'heldout.json'}]",
        "--rollout.backend", "vllm", "--vllm.tensor_parallel_size", "2", "--vllm.enforce_eager", "true",
        "--train.output_dir", str(report_dir),
    ]  # fmt: skip
    eval_cmd = [sys.executable, "-m", "openrlhf.cli.eval", *argv]
    out = subprocess.run(eval_cmd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((report_dir / "eval_report.json").read_text())
    print(f"openrlhf-eval, vLLM TP 2: accuracy {report['accuracy']:.2f} (trainer's final evaluation {after:.2f})")
    assert report["rows"] == 100 and report["tasks"].keys() == {"math"}
    assert report["engine"] == "vllm (cpu build), float32, tensor parallel 2", report["engine"]
    assert abs(report["accuracy"] - after) <= 0.03, (report["accuracy"], after)
