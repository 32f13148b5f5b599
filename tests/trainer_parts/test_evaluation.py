"""Held-out evaluation metrics (greedy and sampled, pass@1 / pass@n), the best-model rule and its key names."""

from __future__ import annotations

import json

import pytest
import torch

from openrlhf.config import ConfigError, eval_metric_name
from openrlhf.config_loading import load_config
from openrlhf.rollout.base import GenerationOutput
from openrlhf.trainer.evaluation import BestModel, eval_metrics, eval_sampling_params
from openrlhf.trainer.experience_maker import Rollout


def scored_rollout(correct: list[float], n: int, lengths: list[int] | None = None) -> Rollout:
    lengths = lengths or [3] * len(correct)
    outputs = [GenerationOutput([1], list(range(k)), "x" * k, [0.0] * k) for k in lengths]
    rollout = Rollout(prompts=[None] * (len(correct) // n), outputs=outputs, n=n)
    rollout.rewards = torch.tensor(correct) * 2 - 0.5
    rollout.scores = torch.tensor(correct)
    rollout.components = {"accuracy": correct, "format": [1.0] * len(correct)}
    return rollout


def test_sampled_metrics_by_hand():
    # 3 prompts x 2 answers: prompt 0 both right, prompt 1 one right, prompt 2 none
    metrics = eval_metrics(scored_rollout([1, 1, 1, 0, 0, 0], n=2, lengths=[1, 2, 3, 4, 5, 6]))
    assert metrics["eval/pass1"] == pytest.approx(3 / 6) == metrics["eval/accuracy"]
    assert metrics["eval/pass2"] == pytest.approx(2 / 3)
    assert metrics["eval/reward"] == pytest.approx((3 * 1.5 - 3 * 0.5) / 6)
    assert metrics["eval/response_length"] == pytest.approx(3.5)
    assert metrics["eval/format"] == 1.0


def test_greedy_metrics_have_no_pass_n_and_use_scores_without_an_accuracy_component():
    rollout = scored_rollout([1, 0, 0, 1], n=1)
    rollout.components = {}
    metrics = eval_metrics(rollout)
    assert metrics["eval/pass1"] == 0.5 and not any(k.startswith("eval/pass") and k != "eval/pass1" for k in metrics)


def test_sampling_params_follow_the_eval_section():
    greedy = eval_sampling_params(load_config([])[0], seed=7)
    assert (greedy.n, greedy.temperature, greedy.top_p, greedy.seed) == (1, 0.0, 1.0, 7)
    # OpenRLHF's --eval.n_samples_per_prompt alone samples at its default temperature, 0.6
    cfg, _ = load_config(["--eval.n_samples_per_prompt", "4", "--rollout.top_p", "0.9"])
    sampled = eval_sampling_params(cfg, seed=7)
    assert (sampled.n, sampled.temperature, sampled.top_p) == (4, 0.6, 0.9)
    cfg, _ = load_config(["--eval.n_samples_per_prompt", "4", "--eval.temperature", "1.0"])
    assert eval_sampling_params(cfg, seed=7).temperature == 1.0
    with pytest.raises(ConfigError, match="greedy decoding gives n identical answers"):
        load_config(["--eval.n_samples_per_prompt", "4", "--eval.temperature", "0"])


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("none", None),
        ("", "eval/pass1"),
        ("eval_default_pass1", "eval/pass1"),
        ("eval_default_pass8", "eval/pass8"),
        ("eval/reward", "eval/reward"),
    ],
)
def test_best_metric_key_names(key, name):
    assert eval_metric_name(key) == name
    cfg, _ = load_config(["--ckpt.best_metric_key", key, "--data.eval_paths", "[heldout.jsonl]"])
    assert cfg.ckpt.best_metric_key == key


@pytest.mark.parametrize(("key", "text"), [("eval_math_pass1", "one data source"), ("accuracy", "not an eval metric")])
def test_bad_best_metric_keys_are_refused_at_load(key, text):
    with pytest.raises(ConfigError, match=text):
        load_config(["--ckpt.best_metric_key", key])


def test_best_model_keeps_the_best_and_names_a_missing_metric(tmp_path):
    best = BestModel("eval/pass1", tmp_path / "best_model")
    assert best.improved({"eval/pass1": 0.25}, step=0)
    assert not best.improved({"eval/pass1": 0.25}, step=1)  # a tie is not an improvement
    assert not best.improved({"eval/pass1": float("nan")}, step=2)
    assert best.improved({"eval/pass1": 0.5}, step=3)
    assert (best.value, best.step) == (0.5, 3)
    assert not best.improved({}, step=4)  # no evaluation this step
    with pytest.raises(ValueError, match=r"'eval/pass1'.*it reports: eval/accuracy, eval/reward"):
        best.improved({"eval/accuracy": 1.0, "eval/reward": 0.0}, step=5)
    restored = BestModel("eval/pass1", tmp_path / "best_model")
    restored.load_state(best.state())
    assert not restored.improved({"eval/pass1": 0.4}, step=6)
    (tmp_path / "best_model").mkdir()
    best.record(tmp_path / "best_model")
    assert json.loads((tmp_path / "best_model" / "best_metric.json").read_text()) == {
        "key": "eval/pass1",
        "value": 0.5,
        "step": 3,
    }
    assert not BestModel(None, tmp_path).improved({"eval/pass1": 1.0}, step=0)
