"""Settings a run would refuse are refused when the config loads, with the same line from ``--print-config``,
``--plan`` and the run, so ``--plan`` never says "fits" for a run the driver would stop."""

from __future__ import annotations

import re

import pytest
import torch

from openrlhf.algorithms.advantages import ADVANTAGE_ESTIMATORS
from openrlhf.algorithms.presets import ALGO_PRESETS
from openrlhf.cli.train import main as train_main
from openrlhf.config import GROUP_ESTIMATORS, PRESET_ESTIMATORS, AdvantageConfig, ConfigError
from openrlhf.config_loading import load_config

GRPO = ("--config", "configs/grpo.yaml")

# (command line, the refusal line's start); each is a setting the run used to refuse only once it started
CONFLICTS = {
    "async with colocate_all": ((*GRPO, "--train.async_enable"), "train.async_enable with train.colocate_all: "),
    "GRPO with one sample": (
        (*GRPO, "--rollout.n_samples_per_prompt", "1"),
        "algo.advantage.estimator=group_norm (algo.name grpo) compares the responses to a prompt",
    ),
    "GRPO's preset with one sample": (
        ("--actor.model_name_or_path", "m", "--rollout.n_samples_per_prompt", "1"),
        "algo.advantage.estimator=group_norm (algo.name grpo) ",
    ),
    "rloo with one sample": (
        (*GRPO, "--algo.advantage.estimator", "rloo", "--rollout.n_samples_per_prompt", "1"),
        "algo.advantage.estimator=rloo ",
    ),
    "broadcast into colocated vLLM engines": (
        (*GRPO, "--rollout.backend", "vllm", "--rollout.weight_sync", "broadcast"),
        "rollout.weight_sync=broadcast with train.colocate_all and vLLM: ",
    ),
    "best model without eval data": (
        (*GRPO, "--ckpt.best_metric_key", "eval/pass1"),
        "ckpt.best_metric_key='eval/pass1' picks the best model by evaluation, but there is no eval data",
    ),
    "a reward server that is no URL": (
        (*GRPO, "--reward.remote_url", "localhost:5000"),
        "reward.remote_url: 'localhost:5000' is not an http(s) URL",
    ),
}


def _refusal(argv: list[str], capsys) -> str:
    """The run's exit code must be 2 with nothing on stdout; returns the one problem line of stderr."""
    assert train_main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[0] == "openrlhf-train: invalid config:" and len(lines) == 2, err
    return lines[1].strip()


@pytest.mark.parametrize("name", sorted(CONFLICTS))
def test_conflicts_are_refused_by_print_config_and_plan_alike(name, capsys):
    argv, start = CONFLICTS[name]
    printed = _refusal([*argv, "--print-config"], capsys)
    planned = _refusal([*argv, "--plan", "--plan-cluster", "1x8x80", "--plan-model-size", "7B"], capsys)
    assert printed == planned and printed.startswith(start), printed
    with pytest.raises(ConfigError, match=re.escape(start)):
        load_config(list(argv))  # what the run and the trainer's own load see


@pytest.mark.parametrize(
    "argv",
    [
        (*GRPO, "--train.async_enable", "--train.colocate_all", "false", "--actor.num_gpus_per_node", "4"),
        (*GRPO, "--rollout.n_samples_per_prompt", "1", "--algo.advantage.estimator", "reinforce"),
        ("--actor.model_name_or_path", "m", "--algo.name", "reinforce_pp", "--rollout.n_samples_per_prompt", "1"),
        (*GRPO, "--rollout.weight_sync", "broadcast"),  # auto backend: decided by the cluster (the run's layout)
        (*GRPO, "--ckpt.best_metric_key", "eval/pass1", "--data.eval_paths", "[heldout.jsonl]"),
        (*GRPO, "--reward.remote_url", "[http://rm-host:5000/get_reward, https://10.0.0.2/get_reward]"),
    ],
)
def test_the_fixed_command_loads(argv):
    load_config(list(argv))


def test_the_demo_needs_no_eval_paths_for_its_best_model():
    """The demos generate their held-out set when they run."""
    cfg, _ = load_config(["--config", "configs/demo_text.yaml", "--ckpt.best_metric_key", "eval/pass1"])
    assert cfg.demo.enable


def test_the_estimator_tables_match_the_algorithms():
    """config.py's tables (it imports no torch) say what openrlhf/algorithms does."""
    assert PRESET_ESTIMATORS == {name: preset["advantage"]["estimator"] for name, preset in ALGO_PRESETS.items()}
    rewards, mask = torch.tensor([1.0, 0.0, 0.5]), torch.ones(3, 4)
    for name, estimator in ADVANTAGE_ESTIMATORS.items():
        cfg = AdvantageConfig(estimator=name)
        if name in GROUP_ESTIMATORS:
            with pytest.raises(ValueError, match="n_samples_per_prompt >= 2"):
                estimator(rewards, mask, None, 1, cfg)
        else:
            estimator(rewards, mask, None, 1, cfg)
    assert set(GROUP_ESTIMATORS) <= set(ADVANTAGE_ESTIMATORS)
