"""Advantage estimators (``algo.advantage.estimator``): outcome rewards [B] -> token advantages [B, T].

Every estimator follows the same three steps, and differs only in step 1 and whether step 3 runs.
Samples come in groups of n consecutive responses to the same prompt (group g, member i):

  1. a per-response score s_i from the (clipped) outcome rewards r_i (the estimator's formula);
  2. token rewards: s_i on the last response token, minus beta * KL_t on every token when the KL is a
     reward penalty; returns G_t = sum_{u >= t} gamma^(u - t) r_u over the response;
  3. for the batch-whitened estimators, A_t = (G_t - mean(G)) / (std(G) + eps) over all valid tokens of
     the batch; otherwise A_t = G_t.

With no KL penalty and gamma = 1 the advantage of every token of response i is just s_i.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from openrlhf.algorithms.filters import filter_advantages
from openrlhf.algorithms.groups import check_group_layout, group_view
from openrlhf.algorithms.masked import (
    check_mask,
    check_token_tensor,
    masked_fill_padding,
    masked_mean,
    masked_var,
    masked_whiten,
)
from openrlhf.config import AdvantageConfig, AlgoConfig
from openrlhf.utils.errors import UserError

# ----------------------------------------------------------------------------- building blocks


def group_mean(rewards: Tensor, n: int) -> Tensor:
    """mean_g = (1/n) sum_j r_gj, broadcast back to [B]."""
    return group_view(rewards, n).mean(dim=-1).repeat_interleave(n)


def group_std(rewards: Tensor, n: int) -> Tensor:
    """std_g = sqrt( sum_j (r_gj - mean_g)^2 / (n - 1) ) (Bessel-corrected, as GRPO codes use), broadcast to [B]."""
    return group_view(rewards, n).std(dim=-1, unbiased=True).repeat_interleave(n)


def last_token_index(mask: Tensor) -> Tensor:
    """Index of the last valid token of each row, -1 for a row without one."""
    positions = torch.arange(mask.shape[-1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, torch.full_like(positions, -1)).amax(dim=-1)


def outcome_token_rewards(scores: Tensor, mask: Tensor, token_penalty: Tensor | None = None) -> Tensor:
    """r_t = s_i * [t = last valid token of i] + p_t, masked; p_t = -beta * KL_t (or 0)."""
    token_rewards = torch.zeros(mask.shape, dtype=scores.dtype, device=mask.device)
    last = last_token_index(mask)
    rows = torch.nonzero(last >= 0, as_tuple=True)[0]
    token_rewards[rows, last[rows]] = scores[rows]
    if token_penalty is not None:
        token_rewards = token_rewards + token_penalty.to(scores.dtype)
    return masked_fill_padding(token_rewards, mask)


def discounted_returns(token_rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """G_t = sum_{u >= t} gamma^(u - t) m_u r_u, then 0 on padding."""
    rewards = masked_fill_padding(token_rewards, mask)
    if gamma == 1.0:
        returns = rewards.flip(-1).cumsum(-1).flip(-1)
    else:
        returns = torch.zeros_like(rewards)
        running = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
        for t in range(rewards.shape[-1] - 1, -1, -1):
            running = rewards[:, t] + gamma * running
            returns[:, t] = running
    return masked_fill_padding(returns, mask)


def _need_groups(name: str, n: int) -> None:
    if n < 2:
        raise ValueError(
            f"algo.advantage.estimator={name!r} compares the responses of a prompt with each other and needs "
            f"rollout.n_samples_per_prompt >= 2; got {n} (use 'reinforce' for one response per prompt)"
        )


def _returns(scores: Tensor, mask: Tensor, token_penalty: Tensor | None, cfg: AdvantageConfig) -> Tensor:
    return discounted_returns(outcome_token_rewards(scores, mask, token_penalty), mask, cfg.gamma)


# ----------------------------------------------------------------------------- estimators

Estimator = Callable[[Tensor, Tensor, "Tensor | None", int, AdvantageConfig], tuple[Tensor, Tensor]]


def group_norm_advantages(
    rewards: Tensor, mask: Tensor, token_penalty: Tensor | None, n: int, cfg: AdvantageConfig
) -> tuple[Tensor, Tensor]:
    """GRPO: s_i = (r_i - mean_g) / (std_g + eps); with no_std_norm, s_i = r_i - mean_g. A = G (no whitening)."""
    _need_groups("group_norm", n)
    scores = rewards - group_mean(rewards, n)
    if not cfg.no_std_norm:
        scores = scores / (group_std(rewards, n) + cfg.eps)
    returns = _returns(scores, mask, token_penalty, cfg)
    return returns.clone(), returns


def dr_grpo_advantages(
    rewards: Tensor, mask: Tensor, token_penalty: Tensor | None, n: int, cfg: AdvantageConfig
) -> tuple[Tensor, Tensor]:
    """Dr.GRPO: s_i = r_i - mean_g (no division by the group std). A = G."""
    _need_groups("dr_grpo", n)
    returns = _returns(rewards - group_mean(rewards, n), mask, token_penalty, cfg)
    return returns.clone(), returns


def rloo_advantages(
    rewards: Tensor, mask: Tensor, token_penalty: Tensor | None, n: int, cfg: AdvantageConfig
) -> tuple[Tensor, Tensor]:
    """RLOO: s_i = r_i - (1/(n-1)) sum_{j != i} r_j  (= n/(n-1) (r_i - mean_g)). A = G."""
    _need_groups("rloo", n)
    group_sum = group_view(rewards, n).sum(dim=-1).repeat_interleave(n)
    returns = _returns(rewards - (group_sum - rewards) / (n - 1), mask, token_penalty, cfg)
    return returns.clone(), returns


def reinforce_advantages(
    rewards: Tensor, mask: Tensor, token_penalty: Tensor | None, n: int, cfg: AdvantageConfig
) -> tuple[Tensor, Tensor]:
    """Reinforce++: s_i = r_i; A_t = (G_t - mean(G)) / (std(G) + eps) over the batch's valid tokens.

    G carries the KL shaping token by token. With no_std_norm, A_t = G_t - mean(G).
    """
    returns = _returns(rewards, mask, token_penalty, cfg)
    return masked_whiten(returns, mask, cfg.eps, scale=not cfg.no_std_norm), returns


def reinforce_baseline_advantages(
    rewards: Tensor, mask: Tensor, token_penalty: Tensor | None, n: int, cfg: AdvantageConfig
) -> tuple[Tensor, Tensor]:
    """Reinforce++ with baseline: s_i = r_i - mean_g; A_t = (G_t - mean(G)) / (std(G) + eps) over the batch."""
    _need_groups("reinforce_baseline", n)
    returns = _returns(rewards - group_mean(rewards, n), mask, token_penalty, cfg)
    return masked_whiten(returns, mask, cfg.eps, scale=not cfg.no_std_norm), returns


ADVANTAGE_ESTIMATORS: dict[str, Estimator] = {
    "group_norm": group_norm_advantages,
    "dr_grpo": dr_grpo_advantages,
    "rloo": rloo_advantages,
    "reinforce": reinforce_advantages,
    "reinforce_baseline": reinforce_baseline_advantages,
}

# Estimators whose step 3 whitens the returns over the whole batch.
BATCH_WHITENED = frozenset({"reinforce", "reinforce_baseline"})


# ----------------------------------------------------------------------------- the trainer's entry point


def _check_rewards(rewards: Tensor, response_mask: Tensor) -> None:
    if not isinstance(rewards, Tensor) or rewards.dim() != 1:
        shape = tuple(rewards.shape) if isinstance(rewards, Tensor) else type(rewards).__name__
        raise ValueError(f"rewards must be a 1-D tensor [B] (one reward per response); got {shape}")
    if rewards.shape[0] != response_mask.shape[0]:
        raise ValueError(
            f"rewards has {rewards.shape[0]} entries but response_mask has {response_mask.shape[0]} rows: "
            "one reward per response"
        )
    bad = torch.nonzero(~torch.isfinite(rewards)).flatten().tolist()
    if bad:
        shown = ", ".join(f"rewards[{i}]={float(rewards[i])}" for i in bad[:5])
        raise UserError(f"non-finite rewards ({len(bad)} of {rewards.shape[0]}): {shown}; check the reward function")


def _kl_penalty(response_mask: Tensor, algo_cfg: AlgoConfig, kl_per_token: Tensor | None) -> Tensor | None:
    """The token penalty -beta * KL_t (padding 0), or None when the KL is not a reward penalty."""
    kl_cfg = algo_cfg.kl
    if kl_per_token is None:
        if kl_cfg.init_kl_coef > 0 and not kl_cfg.use_kl_loss:
            raise ValueError(
                f"algo.kl.init_kl_coef={kl_cfg.init_kl_coef} with algo.kl.use_kl_loss=False makes the KL a reward "
                "penalty: pass kl_per_token = beta * kl_penalty_per_token(log_probs, ref_log_probs, mask, algo.kl)"
            )
        return None
    check_token_tensor("kl_per_token", kl_per_token, response_mask)
    if kl_cfg.use_kl_loss:
        raise ValueError(
            "kl_per_token was passed but algo.kl.use_kl_loss=True puts the KL in the loss "
            "(compute_policy_loss), not in the reward: pass one or the other"
        )
    return masked_fill_padding(-kl_per_token.detach().double(), response_mask)


def compute_advantages(
    rewards: Tensor,
    response_mask: Tensor,
    algo_cfg: AlgoConfig,
    n_samples_per_prompt: int,
    *,
    kl_per_token: Tensor | None = None,
) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Token advantages and returns [B, T] for a whole rollout batch, plus metrics.

    r_i = clip(r_i, -c, c) when ``algo.advantage.reward_clip`` = c > 0; then the estimator named by
    ``algo.advantage.estimator`` (module docstring); then, when ``algo.advantage_filter.enable``, the
    StableReinforce filter. ``kl_per_token`` is the reward penalty beta * KL_t [B, T], already scaled by
    the KL controller's coefficient (beta * :func:`kl_penalty_per_token`); it is subtracted from the token
    rewards. Computed in float64, returned as float32, 0 on padding. Metric keys are namespaced
    (``advantage/mean``, ``adv_filter/...``).
    """
    check_mask(response_mask)
    _check_rewards(rewards, response_mask)
    n = n_samples_per_prompt
    num_groups = check_group_layout(rewards.shape[0], n)
    adv_cfg = algo_cfg.advantage
    raw = rewards.detach().double()  # float64 on the driver: equal rewards give exactly zero advantage
    clipped = raw.clamp(-adv_cfg.reward_clip, adv_cfg.reward_clip) if adv_cfg.reward_clip > 0 else raw
    penalty = _kl_penalty(response_mask, algo_cfg, kl_per_token)
    estimator = ADVANTAGE_ESTIMATORS[adv_cfg.estimator]
    advantages, returns = estimator(clipped, response_mask, penalty, n, adv_cfg)

    all_equal = group_view(clipped, n).std(dim=-1, unbiased=False) == 0
    metrics: dict[str, float] = {
        "reward/groups_all_equal_frac": float(all_equal.sum()) / num_groups,
        "return/mean": float(masked_mean(returns, response_mask)),
    }
    if adv_cfg.reward_clip > 0:
        metrics["reward/clipped_frac"] = float((raw != clipped).float().mean())
    if penalty is not None:
        metrics["kl/penalty_mean"] = float(-masked_mean(penalty, response_mask))
    if algo_cfg.advantage_filter.enable:
        raw_mean = None
        if algo_cfg.advantage_filter.mode == "r1_reward_code":
            # the mean of what was normalised: the returns for batch whitening, the raw rewards' returns else
            whitened = adv_cfg.estimator in BATCH_WHITENED
            before = returns if whitened else _returns(clipped, response_mask, penalty, adv_cfg)
            raw_mean = masked_mean(before, response_mask)
        advantages, filter_metrics = filter_advantages(
            advantages, response_mask, algo_cfg.advantage_filter, raw_mean=raw_mean
        )
        metrics.update(filter_metrics)
    valid = response_mask.bool()
    metrics["advantage/mean"] = float(masked_mean(advantages, response_mask))
    metrics["advantage/std"] = float(masked_var(advantages, response_mask).sqrt())
    metrics["advantage/abs_max"] = float(advantages[valid].abs().max()) if bool(valid.any()) else 0.0
    return advantages.float(), returns.float(), metrics
