"""Named presets fill in what algo.name implies and never override what the user set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from openrlhf.algorithms import preset_overrides, resolve_algo_preset
from openrlhf.config import AlgoConfig
from openrlhf.config_loading import build_config, parse_overrides


def from_cli(*argv: str) -> AlgoConfig:
    return build_config(parse_overrides(list(argv))).algo


def test_stable_reinforce_turns_on_pre_clip_and_filter():
    algo = resolve_algo_preset(from_cli("--algo.name", "stable_reinforce"))
    assert algo.advantage.estimator == "reinforce"
    assert algo.pre_clip.enable and algo.advantage_filter.enable and algo.advantage_filter.mode == "paper"
    assert algo.kl.use_kl_loss is False and algo.kl.estimator == "k1"
    assert algo.kl.init_kl_coef == 0.0  # a preset never switches the reference model on


def test_grpo_and_reinforce_pp():
    grpo = resolve_algo_preset(AlgoConfig())
    assert grpo.advantage.estimator == "group_norm" and grpo.kl.use_kl_loss and grpo.kl.estimator == "k3"
    assert not grpo.pre_clip.enable
    rpp = resolve_algo_preset(from_cli("--algo.name", "reinforce_pp"))
    assert rpp.advantage.estimator == "reinforce" and not rpp.kl.use_kl_loss and not rpp.advantage_filter.enable


def test_explicit_choices_win():
    user = from_cli(
        "--algo.name",
        "stable_reinforce",
        "--algo.pre_clip.enable",
        "false",
        "--algo.advantage.estimator",
        "group_norm",
        "--algo.advantage_filter.mode",
        "r1_reward_code",
    )
    algo = resolve_algo_preset(user)
    assert algo.pre_clip.enable is False
    assert algo.advantage.estimator == "group_norm"
    assert algo.advantage_filter.enable is True and algo.advantage_filter.mode == "r1_reward_code"
    assert user.advantage_filter.enable is False  # the input is not modified
    assert preset_overrides(user) == {
        "algo.kl.use_kl_loss": False,
        "algo.kl.estimator": "k1",
        "algo.advantage_filter.enable": True,
    }


def test_assignment_counts_as_explicit_and_resolution_is_idempotent():
    algo = AlgoConfig(name="stable_reinforce")
    algo.kl.use_kl_loss = True
    resolved = resolve_algo_preset(algo)
    assert resolved.kl.use_kl_loss is True
    assert resolve_algo_preset(resolved) == resolved
    assert preset_overrides(resolved) == {}


def test_no_second_copy_of_the_algorithms_in_the_package():
    """The trainer and workers call openrlhf.algorithms; nothing else defines these functions."""
    names = [
        "compute_advantages",
        "compute_policy_loss",
        "aggregate_loss",
        "masked_whiten",
        "masked_mean",
        "kl_estimate",
        "kl_penalty_per_token",
        "dynamic_filter_groups",
        "filter_advantages",
        "resolve_algo_preset",
        "group_norm_advantages",
        "clipped_surrogate_loss",
    ]
    pattern = re.compile(r"^\s*def (" + "|".join(names) + r")\(", re.MULTILINE)
    package = Path(__file__).resolve().parents[2] / "openrlhf"
    copies = [
        f"{path.relative_to(package.parent)}: def {match.group(1)}"
        for path in package.rglob("*.py")
        if "algorithms" not in path.relative_to(package).parts
        for match in pattern.finditer(path.read_text())
    ]
    assert copies == [], "algorithm functions redefined outside openrlhf/algorithms: " + "; ".join(copies)


@pytest.mark.parametrize("name", ["grpo", "reinforce_pp", "stable_reinforce"])
def test_every_name_has_a_preset(name):
    assert isinstance(resolve_algo_preset(AlgoConfig(name=name)), AlgoConfig)
