"""Reward functions and servers written for OpenRLHF, unchanged, in real training runs.

(a) OpenRLHF's ``examples/python/reward_func.py`` passed the OpenRLHF way, ``--reward.remote_url FILE.py``;
(b) a real HTTP server on loopback answering in ``openrlhf/cli/serve_rm.py``'s shapes (per-sample
``extra_logs``), given as a plain ``--reward.remote_url URL``; (c) OpenRLHF's ``math_reward_func.py``
(which imports ``openrlhf.utils``) on boxed answers, without Ray.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import yaml
from trainer_parts.serve_rm_style_server import ServeRMStyleServer  # tests/ is on sys.path (rootdir)

from openrlhf.trainer.reward_client import FileRewardFunction

from .helpers import read_metrics, run_training, small_run_args

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "openrlhf_examples"


def test_openrlhf_example_reward_func_via_remote_url_trains(ray_cluster, task, tmp_path):
    out = tmp_path / "run"
    reward_file = EXAMPLES / "reward_func.py"
    summary = run_training(small_run_args(task, out, "--reward.remote_url", str(reward_file)))
    assert summary["steps"] == 2
    saved = yaml.safe_load((out / "config.yaml").read_text())["reward"]
    assert saved["reward_func"] == str(reward_file) and saved["remote_url"] == []
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        # the file's rewards are random 0/1 per sample; its extra_logs {"dummy_scores": tensor} is their mean
        assert 0.0 <= row["reward/mean"] <= 1.0
        assert row["reward_log/dummy_scores"] == pytest.approx(row["reward/mean"], abs=1e-6)
        assert "policy/loss" in row


def test_serve_rm_shaped_server_via_plain_remote_url_trains(ray_cluster, task, tmp_path):
    out = tmp_path / "run"
    with ServeRMStyleServer() as server:
        summary = run_training(small_run_args(task, out, "--reward.remote_url", server.url))
    assert summary["steps"] == 2
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        # serve_rm.py answers extra_logs {"dummy_scores": rewards}: per sample, averaged for the step
        assert row["reward_log/dummy_scores"] == pytest.approx(row["reward/mean"], abs=1e-6)
        assert 0.0 < row["reward/mean"] <= 1.0
    training = [body for body in server.requests if len(body["query"]) == 16]  # 4 prompts x 4 samples
    assert len(training) >= 2
    assert all(body.keys() == {"query", "prompts", "labels"} for body in server.requests)


MATH_CASES = [
    # (prompt, response, label, reward)
    ("What is 1/2 + 0?\n", r"Half, so \boxed{\frac{1}{2}}.", "0.5", 1.0),
    ("What is 6 * 7?\n", r"6 * 7 = \boxed{42}", "42", 1.0),
    ("What is 6 * 7?\n", r"I think \boxed{41}", "42", 0.0),
    ("What is 6 * 7?\n", "42, no box", "42", 0.0),
    ("Simplify 1 + x.\n", r"\boxed{x + 1}", "1+x", 1.0),
    ("How many grams?\n", r"\boxed{1,000}", "1000", 1.0),
    ("Angle?\n", r"\boxed{90^\circ}", "90", 1.0),
    ("What is 2 + 2?\n", r"first \boxed{5}, no wait, \boxed{4}", "4", 1.0),
]


def test_openrlhf_math_reward_func_grades_boxed_answers():
    prompts = [p for p, _, _, _ in MATH_CASES]
    queries = [p + r for p, r, _, _ in MATH_CASES]
    labels = [lab for _, _, lab, _ in MATH_CASES]
    expected = [reward for _, _, _, reward in MATH_CASES]

    # the file itself, called as OpenRLHF calls it: tensors back
    spec = importlib.util.spec_from_file_location("reward_func", EXAMPLES / "math_reward_func.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.reward_func(queries, prompts, labels)
    assert torch.equal(out["rewards"], torch.tensor(expected))
    assert float(out["extra_logs"]["math_accuracy"]) == pytest.approx(sum(expected) / len(expected))

    # and through the trainer's reward source, as --reward.remote_url math_reward_func.py uses it
    result = FileRewardFunction(EXAMPLES / "math_reward_func.py").score(queries, prompts, labels)
    assert result.rewards == result.scores == expected
    assert result.extra_logs == {"math_accuracy": pytest.approx(sum(expected) / len(expected))}
