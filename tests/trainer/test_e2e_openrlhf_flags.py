"""OpenRLHF's example-script flags that came with issue #14's last part, in one real 2-step run: sampled
evaluation (pass@1 / pass@n), the best model by OpenRLHF's metric name, Hugging Face copies in checkpoints,
the stop-properly penalty and ICEPOP importance correction in its band."""

from __future__ import annotations

import json

import pytest

from .helpers import read_metrics, run_training, small_run_args, with_reward_func

PRORL_FLAGS = [
    # train_prorlv2_math_hybrid_engine.sh's, with the README's best-checkpoint flag (GSPO with the correction
    # applies no token weights, as in OpenRLHF: tests/algorithms/test_policy_loss_vs_openrlhf.py covers it)
    "--eval.temperature", "1.0",
    "--eval.n_samples_per_prompt", "2",
    "--eval.steps", "1",
    "--ckpt.save_hf",
    "--ckpt.save_steps", "1",
    "--ckpt.best_metric_key", "eval_default_pass1",
    "--reward.stop_properly_penalty_coef", "0.0",
    "--algo.advantage.is_correction_enable",
    "--algo.advantage.is_correction_threshold", "0.5", "5.0",
    "--algo.advantage.is_correction_type", "icepop",
]  # fmt: skip


def test_openrlhf_prorl_flags_in_a_real_run(ray_cluster, task, tmp_path):
    out = tmp_path / "run"
    summary = run_training(small_run_args(task, out, *with_reward_func(task), *PRORL_FLAGS))
    assert summary["steps"] == 2
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    first = rows[0]
    # sampled evaluation after step 1 (eval.steps 1; the last step is evaluated for the summary)
    assert {"eval/pass1", "eval/pass2"} <= first.keys()
    assert first["eval/pass1"] <= first["eval/pass2"] <= 1.0
    for row in rows:
        # 16 new tokens: responses are cut, and the stop-properly penalty zeroes exactly those
        assert row["reward/truncated_penalized"] == pytest.approx(16 * row["response_length/truncated_frac"])
        assert "policy/tis_weight_mean" in row and "policy/tis_masked_frac" in row  # ICEPOP is on
    # the best model by OpenRLHF's key, exported in Hugging Face format with its value
    best = json.loads((out / "best_model" / "best_metric.json").read_text())
    assert best["key"] == "eval/pass1" and best["step"] in (0, 1, 2)
    assert best["value"] == max([summary["heldout_accuracy_before"], first["eval/pass1"], summary["final_pass1"]])
    assert (out / "best_model" / "config.json").is_file() and summary["best_metric"] == best["value"]
    # every checkpoint holds a Hugging Face copy
    checkpoints = sorted((out / "ckpt").glob("global_step*"))
    assert checkpoints
    for ckpt in checkpoints:
        assert (ckpt / "hf" / "config.json").is_file()
        assert any((ckpt / "hf").glob("*.safetensors"))
    saved = (out / "config.yaml").read_text()
    assert "tis_mode: icepop" in saved and "tis_floor: 0.5" in saved
