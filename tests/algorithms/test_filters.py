"""StableReinforce's advantage filter (both modes) and dynamic group filtering."""

from __future__ import annotations

import math

import pytest
import torch

from openrlhf.algorithms import compute_advantages, dynamic_filter_groups, filter_advantages
from openrlhf.config import AdvantageConfig, AdvantageFilterConfig, AlgoConfig, DynamicFilterConfig


def reinforce(filter_cfg: AdvantageFilterConfig | None = None) -> AlgoConfig:
    return AlgoConfig(
        advantage=AdvantageConfig(estimator="reinforce"),
        advantage_filter=filter_cfg or AdvantageFilterConfig(),
    )


def test_advantage_filter_removes_an_injected_outlier():
    gen = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 2, (64,), generator=gen).float()
    rewards[17] = 1000.0  # a reward-model glitch
    mask = torch.ones(64, 4, dtype=torch.bool)
    plain, _, _ = compute_advantages(rewards, mask, reinforce(), 1)
    assert plain[17, 0].item() > 3  # the outlier survives normalisation far outside the 3-sigma band
    filtered, _, metrics = compute_advantages(rewards, mask, reinforce(AdvantageFilterConfig(enable=True)), 1)
    assert torch.all(filtered[17] == 0)
    keep = torch.arange(64) != 17
    torch.testing.assert_close(filtered[keep], plain[keep])
    assert metrics["adv_filter/seqs_touched"] == 1.0
    assert metrics["adv_filter/out_of_band_tokens"] == 4.0
    assert metrics["adv_filter/zeroed_frac"] == pytest.approx(1 / 64)


def test_nan_inf_and_max_abs_are_zeroed():
    # the band is wide (sigma 100), so only the non-finite values and |A| > 10 go
    adv = torch.tensor([[0.5, float("nan"), -12.0, float("inf")], [9.0, -1.0, 0.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    out, metrics = filter_advantages(adv, mask, AdvantageFilterConfig(enable=True, sigma=100.0))
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.0, 0.0, 0.0], [9.0, -1.0, 0.0, 0.0]]))
    assert metrics["adv_filter/nonfinite_tokens"] == 2.0
    assert metrics["adv_filter/over_max_abs_tokens"] == 1.0
    assert metrics["adv_filter/zeroed_frac"] == pytest.approx(3 / 7)


def test_paper_band_versus_r1_reward_code_band_by_hand():
    # 17 ones and 3 zeros: mean 0.85, population std sqrt(0.85 * 0.15) = 0.35707
    # normalised: ones -> 0.4201, zeros -> -2.3805
    rewards = torch.tensor([1.0] * 17 + [0.0] * 3)
    mask = torch.ones(20, 1, dtype=torch.bool)
    std = math.sqrt(0.85 * 0.15)
    paper, _, metrics = compute_advantages(rewards, mask, reinforce(AdvantageFilterConfig(enable=True)), 1)
    # paper: |A - mean(A)| <= 3 with mean(A) = 0: all kept
    torch.testing.assert_close(paper[:, 0], ((rewards - 0.85) / std), atol=1e-4, rtol=0)
    assert metrics["adv_filter/zeroed_frac"] == 0.0
    # code: bounds 0.85 -+ 3 = [-2.15, 3.85]: the zeros' -2.38 falls out, the ones stay
    code_cfg = AdvantageFilterConfig(enable=True, mode="r1_reward_code")
    code, _, metrics = compute_advantages(rewards, mask, reinforce(code_cfg), 1)
    assert torch.all(code[17:] == 0)
    torch.testing.assert_close(code[:17, 0], torch.full((17,), 0.15 / std), atol=1e-4, rtol=0)
    assert metrics["adv_filter/band_low"] == pytest.approx(0.85 - 3, abs=1e-6)
    assert metrics["adv_filter/band_high"] == pytest.approx(0.85 + 3, abs=1e-6)


def test_code_mode_needs_raw_mean_and_disabled_filter_is_identity():
    adv = torch.tensor([[100.0]])
    mask = torch.ones(1, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match="needs raw_mean"):
        filter_advantages(adv, mask, AdvantageFilterConfig(enable=True, mode="r1_reward_code"))
    out, metrics = filter_advantages(adv, mask, AdvantageFilterConfig(enable=False))
    assert out is adv and metrics == {}


SCORES = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 0.5])


def test_dynamic_filter_by_hand():
    # group means: 1 (all equal), 0.5, 0 (all equal), 0.625; range [0, 0.6] also drops groups 0 and 3
    cfg = DynamicFilterConfig(enable=True, score_range=(0.0, 0.6))
    keep, metrics = dynamic_filter_groups(SCORES, 4, cfg)
    assert keep.tolist() == [False] * 4 + [True] * 4 + [False] * 8
    assert metrics == {
        "dyn_filter/groups": 4.0,
        "dyn_filter/groups_kept": 1.0,
        "dyn_filter/groups_dropped": 3.0,
        "dyn_filter/groups_all_equal": 2.0,
        "dyn_filter/groups_out_of_range": 2.0,
        "dyn_filter/groups_nonfinite": 0.0,
    }


def test_dynamic_filter_options():
    keep, metrics = dynamic_filter_groups(SCORES, 4, DynamicFilterConfig(enable=True))
    assert keep.tolist() == [False] * 4 + [True] * 4 + [False] * 4 + [True] * 4
    keep, _ = dynamic_filter_groups(SCORES.tolist(), 4, DynamicFilterConfig(enable=True, drop_equal_scores=False))
    assert keep.all() and keep.dtype == torch.bool
    keep, metrics = dynamic_filter_groups(SCORES, 4, DynamicFilterConfig(enable=False))
    assert keep.all() and metrics["dyn_filter/groups_all_equal"] == 2.0 and metrics["dyn_filter/groups_dropped"] == 0
    nan_scores = SCORES.clone()
    nan_scores[5] = float("nan")
    keep, metrics = dynamic_filter_groups(nan_scores, 4, DynamicFilterConfig(enable=True))
    assert not keep[4:8].any() and metrics["dyn_filter/groups_nonfinite"] == 1.0


def test_dynamic_filter_errors():
    with pytest.raises(ValueError, match=r"algo.dynamic_filter.score_range=\(1.0, 0.0\)"):
        # The config tree rejects this at load time; the function still guards configs built without validation.
        dynamic_filter_groups(SCORES, 4, DynamicFilterConfig.model_construct(enable=True, score_range=(1.0, 0.0)))
    with pytest.raises(ValueError, match="scores has 16 samples, not a whole number of groups"):
        dynamic_filter_groups(SCORES, 3, DynamicFilterConfig(enable=True))
