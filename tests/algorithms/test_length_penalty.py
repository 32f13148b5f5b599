"""The stop-properly penalty by hand and against OpenRLHF 0.11.2's ``apply_stop_properly_penalty`` (the wheel's)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from openrlhf.algorithms import stop_properly_penalty

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from openrlhf_wheel import wheel_function  # noqa: E402

REWARDS = torch.tensor([1.0, 0.5, -0.2, 0.8, 0.0])
CUT = torch.tensor([True, False, True, False, True])


def test_scale_and_replace_by_hand():
    scaled, stats = stop_properly_penalty(REWARDS, CUT, 0.5)
    torch.testing.assert_close(scaled, torch.tensor([0.5, 0.5, -0.1, 0.8, 0.0]))
    assert stats == {"reward/truncated_penalized": 3.0}
    replaced, _ = stop_properly_penalty(REWARDS, CUT, -0.5)
    torch.testing.assert_close(replaced, torch.tensor([-0.5, 0.5, -0.5, 0.8, -0.5]))
    zeroed, _ = stop_properly_penalty(REWARDS, CUT, 0.0)
    assert zeroed[CUT].abs().sum() == 0 and torch.equal(zeroed[~CUT], REWARDS[~CUT])
    assert torch.equal(REWARDS, torch.tensor([1.0, 0.5, -0.2, 0.8, 0.0]))  # the input is not changed


def test_a_coefficient_above_one_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stop_properly_penalty(REWARDS, CUT, 1.5)


@pytest.fixture(scope="module")
def openrlhf_apply_stop_properly_penalty():
    return wheel_function(
        "openrlhf/trainer/ppo_utils/length_penalty.py", "apply_stop_properly_penalty", "from typing import List"
    )


@pytest.mark.contract
@pytest.mark.parametrize("coef", [0.0, 0.3, 1.0, -0.5, -2.0])
def test_equals_openrlhfs(openrlhf_apply_stop_properly_penalty, coef):
    ours, stats = stop_properly_penalty(REWARDS, CUT, coef)
    # OpenRLHF works on experiences in place: rewards and truncated flags per micro-batch
    experiences = [
        types.SimpleNamespace(rewards=REWARDS[:2].clone(), truncated=CUT[:2]),
        types.SimpleNamespace(rewards=REWARDS[2:].clone(), truncated=CUT[2:]),
    ]
    count = openrlhf_apply_stop_properly_penalty(experiences, coef)
    torch.testing.assert_close(ours, torch.cat([e.rewards for e in experiences]))
    assert stats["reward/truncated_penalized"] == count == 3
