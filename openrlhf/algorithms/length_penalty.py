"""Reward shaping by how a response ended (ProRL's stop-properly penalty, OpenRLHF's
``--reward.stop_properly_penalty_coef``).

With r_i the reward of response i and cut_i = 1 when it hit max_new_tokens (finish_reason "length"):

  c in [0, 1]:  r_i <- c * r_i   where cut_i     (c = 0: a cut response earns nothing)
  c < 0:        r_i <- c         where cut_i     (a fixed penalty, whatever the reward said)

Responses that ended with eos keep their reward. Applied before the advantage estimator, so a group's
baseline sees the shaped rewards.
"""

from __future__ import annotations

import torch
from torch import Tensor


def stop_properly_penalty(rewards: Tensor, truncated: Tensor, coef: float) -> tuple[Tensor, dict[str, float]]:
    """The shaped rewards (a new tensor) and ``reward/truncated_penalized`` (how many were changed)."""
    if coef > 1:
        raise ValueError(f"stop_properly_penalty_coef={coef}: use c in [0, 1] (scale) or c < 0 (fixed reward)")
    if truncated.shape != rewards.shape:
        raise ValueError(f"truncated has shape {tuple(truncated.shape)}, rewards {tuple(rewards.shape)}")
    cut = truncated.bool()
    shaped = torch.where(cut, torch.full_like(rewards, coef) if coef < 0 else rewards * coef, rewards)
    return shaped, {"reward/truncated_penalized": float(cut.sum())}
