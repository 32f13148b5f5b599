"""Filters on a batch: StableReinforce's advantage filter and dynamic group filtering (DAPO-style).

Both read their config section and do nothing but report when its ``enable`` is off.
"""

from __future__ import annotations

import torch
from torch import Tensor

from openrlhf.algorithms.groups import group_view
from openrlhf.algorithms.masked import check_mask, check_token_tensor
from openrlhf.config import AdvantageFilterConfig, DynamicFilterConfig


def advantage_band(
    advantages: Tensor, valid: Tensor, cfg: AdvantageFilterConfig, raw_mean: float | Tensor | None
) -> tuple[Tensor, Tensor]:
    """The [low, high] band an advantage must lie in to be kept (``algo.advantage_filter.mode``).

    paper:          mu_A +- sigma, mu_A the mean of the normalised advantages over valid finite tokens
                    (R1-Reward, arXiv 2505.02835: keep |A - mu_A| <= 3 after normalisation,
                    where the normalised advantages have mean ~0 and std 1)
    r1_reward_code: mu_raw +- sigma, mu_raw the mean of the values *before* normalisation (what
                    R1-Reward's released code does; with 0/1 rewards mu_raw > 0, so the band shifts up
                    and cuts negative advantages harder than positive ones)
    """
    if cfg.mode == "paper":
        finite = valid & torch.isfinite(advantages)
        centre = torch.where(finite, advantages, torch.zeros_like(advantages)).sum() / finite.sum().clamp_min(1)
    elif cfg.mode == "r1_reward_code":
        if raw_mean is None:
            raise ValueError(
                "algo.advantage_filter.mode='r1_reward_code' needs raw_mean, the mean of the advantages "
                "before normalisation (compute_advantages passes it)"
            )
        centre = torch.as_tensor(raw_mean, dtype=advantages.dtype, device=advantages.device)
    else:
        raise ValueError(
            f"algo.advantage_filter.mode={cfg.mode!r} is not a filter mode (allowed: 'paper', 'r1_reward_code')"
        )
    return centre - cfg.sigma, centre + cfg.sigma


def filter_advantages(
    advantages: Tensor,
    mask: Tensor,
    cfg: AdvantageFilterConfig,
    *,
    raw_mean: float | Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """StableReinforce advantage filter: A'_t = A_t if A_t is kept, else 0 (padding also 0).

    A_t is kept when it is finite, low <= A_t <= high (see :func:`advantage_band`) and
    |A_t| <= max_abs (``algo.advantage_filter.max_abs``, 10 in the paper). Returns the filtered
    advantages and counts of what was removed (valid tokens only; the categories do not overlap).
    """
    check_mask(mask)
    check_token_tensor("advantages", advantages, mask)
    valid = mask.bool()
    n_valid = max(int(valid.sum()), 1)
    if not cfg.enable:
        return advantages, {}
    finite = torch.isfinite(advantages)
    low, high = advantage_band(advantages, valid, cfg, raw_mean)
    safe = torch.where(finite, advantages, torch.zeros_like(advantages))
    in_band = (safe >= low) & (safe <= high)
    small = safe.abs() <= cfg.max_abs
    keep = valid & finite & in_band & small
    filtered = torch.where(keep, advantages, torch.zeros_like(advantages))
    nonfinite = valid & ~finite
    out_of_band = valid & finite & ~in_band
    too_big = valid & finite & in_band & ~small
    zeroed = valid & ~keep
    metrics = {
        "adv_filter/zeroed_frac": float(zeroed.sum()) / n_valid,
        "adv_filter/nonfinite_tokens": float(nonfinite.sum()),
        "adv_filter/out_of_band_tokens": float(out_of_band.sum()),
        "adv_filter/over_max_abs_tokens": float(too_big.sum()),
        "adv_filter/seqs_touched": float(zeroed.any(dim=-1).sum()),
        "adv_filter/band_low": float(low),
        "adv_filter/band_high": float(high),
    }
    return filtered, metrics


def dynamic_filter_groups(
    scores: Tensor | list[float], n_samples_per_prompt: int, cfg: DynamicFilterConfig
) -> tuple[Tensor, dict[str, float]]:
    """Which samples to keep when groups without a learning signal are dropped (DAPO's dynamic sampling).

    Scores [B] are laid out group by group (n_samples_per_prompt consecutive samples per prompt). A
    group g with scores s_g1..s_gn is dropped when
      drop_equal_scores and max_j s_gj == min_j s_gj   (all equal: zero group advantage), or
      mean_j s_gj is outside [lo, hi] = score_range     (too easy or too hard), or
      any s_gj is NaN or inf.
    Returns a bool keep mask [B] (whole groups) and the counts. With ``enable`` off everything is kept
    and the counts still report what the filter would have seen.
    """
    lo, hi = cfg.score_range
    if lo > hi:
        raise ValueError(f"algo.dynamic_filter.score_range={cfg.score_range!r}: the low end must be <= the high end")
    groups = group_view(torch.as_tensor(scores, dtype=torch.float64), n_samples_per_prompt, name="scores")
    finite = torch.isfinite(groups).all(dim=-1)
    safe = torch.where(torch.isfinite(groups), groups, torch.zeros_like(groups))
    all_equal = finite & (safe.amax(dim=-1) == safe.amin(dim=-1))
    means = safe.mean(dim=-1)
    out_of_range = finite & ((means < lo) | (means > hi))
    drop = ~finite | out_of_range
    if cfg.drop_equal_scores:
        drop = drop | all_equal
    if not cfg.enable:
        drop = torch.zeros_like(drop)
    keep_groups = ~drop
    metrics = {
        "dyn_filter/groups": float(groups.shape[0]),
        "dyn_filter/groups_kept": float(keep_groups.sum()),
        "dyn_filter/groups_dropped": float(drop.sum()),
        "dyn_filter/groups_all_equal": float(all_equal.sum()),
        "dyn_filter/groups_out_of_range": float(out_of_range.sum()),
        "dyn_filter/groups_nonfinite": float((~finite).sum()),
    }
    keep = keep_groups.repeat_interleave(n_samples_per_prompt)
    return keep, metrics
