"""The driver's step phases called on their own, without Ray: reward shaping, whole groups per rank, advantages."""

from __future__ import annotations

import pytest
import torch

from openrlhf.algorithms import compute_advantages
from openrlhf.config_loading import load_config
from openrlhf.rollout.base import GenerationOutput, GenerationRequest
from openrlhf.rollout.prompt_encoder import EncodedPrompt
from openrlhf.trainer.experience_maker import Rollout, build_experience
from openrlhf.trainer.step_phases import shape_rewards, step_advantages, trim_to_whole_groups


def _rollout(rewards: list[float], n: int, finish: list[str]) -> Rollout:
    prompts = [EncodedPrompt(sample=None, request=GenerationRequest("p", [1, 2, 3])) for _ in range(len(rewards) // n)]
    outputs = [
        GenerationOutput([1, 2, 3], [4, 5, 6][: 1 + i % 3], "x", [-0.5] * (1 + i % 3), f) for i, f in enumerate(finish)
    ]
    tensor = torch.tensor(rewards)
    return Rollout(prompts, outputs, n, rewards=tensor.clone(), scores=tensor.clone(), components={"acc": rewards})


def test_shape_rewards_penalises_truncation_drops_flat_groups_and_keeps_whole_groups_per_rank():
    cfg = load_config(
        [
            "--rollout.n_samples_per_prompt", "2",
            "--reward.stop_properly_penalty_coef", "0.0",
            "--algo.dynamic_filter.enable", "true",
        ]
    )[0]  # fmt: skip
    rollout = _rollout([1.0, 0.0, 1.0, 1.0, 0.0, 1.0], 2, ["stop", "length", "stop", "stop", "stop", "stop"])
    exp = build_experience(rollout, pad_token_id=0)
    shaped = shape_rewards(rollout, exp, cfg, world=2)
    # the truncated response's reward became 0 (coef 0: truncated responses get no reward)
    assert shaped.rewards.tolist() == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    # group 2 (1, 1) has no spread and is dropped; groups 1 and 3 remain: 4 rows over 2 ranks
    assert shaped.keep.tolist() == [True, True, False, False, True, True]
    assert shaped.metrics["response_length/truncated_frac"] == pytest.approx(1 / 6)
    assert shaped.metrics["reward/acc"] == pytest.approx(4 / 6)
    assert shaped.generated_tokens == float(exp.response_mask.sum())


def test_trim_keeps_only_groups_that_split_evenly_over_the_ranks():
    keep = torch.tensor([True] * 6)
    assert trim_to_whole_groups(keep, 2, 4).tolist() == [True, True, True, True, False, False]
    assert trim_to_whole_groups(keep, 2, 3).tolist() == [True] * 6


def test_step_advantages_are_the_algorithms_own():
    cfg = load_config(["--rollout.n_samples_per_prompt", "2"])[0]
    rollout = _rollout([1.0, 0.0, 0.5, 0.25], 2, ["stop"] * 4)
    exp = build_experience(rollout, pad_token_id=0)
    step_advantages(exp, rollout.rewards, cfg, kl_per_token=None, kl_coef=0.0)
    expected, _, _ = compute_advantages(rollout.rewards, exp.response_mask, cfg.algo, 2)
    torch.testing.assert_close(exp.advantages, expected)
