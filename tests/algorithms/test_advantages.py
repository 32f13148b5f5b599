"""Advantage estimators against hand-computed values, their errors, and invariants (hypothesis)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from openrlhf.algorithms import compute_advantages, kl_penalty_per_token
from openrlhf.config import AdvantageConfig, AlgoConfig, KLConfig


def algo(estimator: str = "group_norm", **advantage) -> AlgoConfig:
    return AlgoConfig(advantage=AdvantageConfig(estimator=estimator, **advantage))


def full_mask(batch: int, length: int) -> torch.Tensor:
    return torch.ones(batch, length, dtype=torch.bool)


def lengths_mask(lengths: list[int], width: int) -> torch.Tensor:
    return torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)


# ----------------------------------------------------------------------------- hand-computed values


def test_group_norm_by_hand():
    # group 1: mean 0.5, Bessel std sqrt(1/3) = 0.57735 -> +-0.866025
    # group 2: mean 0.75, Bessel std sqrt(0.75 / 3) = 0.5 -> 0.5, 0.5, 0.5, -1.5
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    adv, ret, metrics = compute_advantages(rewards, full_mask(8, 3), algo("group_norm"), 4)
    s = 0.5 / math.sqrt(1 / 3)
    expected = torch.tensor([s, -s, -s, s, 0.5, 0.5, 0.5, -1.5])
    torch.testing.assert_close(adv, expected[:, None].expand(8, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(ret, adv)
    assert metrics["reward/groups_all_equal_frac"] == 0.0
    assert metrics["advantage/mean"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["advantage/abs_max"] == pytest.approx(1.5, abs=1e-5)


def test_group_norm_equal_group_gives_zero():
    adv, _, metrics = compute_advantages(torch.tensor([1.0, 1.0, 0.0, 1.0]), full_mask(4, 2), algo(), 2)
    assert torch.all(adv[:2] == 0)
    assert metrics["reward/groups_all_equal_frac"] == 0.5


def test_dr_grpo_and_no_std_norm_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 3.0, 1.0, 1.0, 1.0])
    expected = torch.tensor([0.5, -0.5, -0.5, 0.5, 1.5, -0.5, -0.5, -0.5])
    adv, _, _ = compute_advantages(rewards, full_mask(8, 1), algo("dr_grpo"), 4)
    torch.testing.assert_close(adv[:, 0], expected)
    adv_nostd, _, _ = compute_advantages(rewards, full_mask(8, 1), algo("group_norm", no_std_norm=True), 4)
    torch.testing.assert_close(adv_nostd, adv)


def test_rloo_by_hand():
    # r_i - mean of the other three: 1 - 1/3, 0 - 2/3, 0 - 2/3, 1 - 1/3
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    adv, _, _ = compute_advantages(rewards, full_mask(4, 2), algo("rloo"), 4)
    torch.testing.assert_close(adv[:, 1], torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3]))


def test_reinforce_whitens_over_valid_tokens():
    # returns: row 0 [1, 1], row 1 [0, pad]; valid tokens 1, 1, 0: mean 2/3, population std sqrt(2/9)
    rewards = torch.tensor([1.0, 0.0])
    mask = lengths_mask([2, 1], 2)
    adv, ret, _ = compute_advantages(rewards, mask, algo("reinforce"), 1)
    std = math.sqrt(2 / 9)
    torch.testing.assert_close(ret, torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    expected = torch.tensor([[(1 / 3) / std, (1 / 3) / std], [(-2 / 3) / std, 0.0]])
    torch.testing.assert_close(adv, expected, atol=1e-5, rtol=0)


def test_reinforce_baseline_by_hand():
    # group-centred scores 0.5, -0.5, 1, -1; whitened: mean 0, population std sqrt(0.625)
    rewards = torch.tensor([1.0, 0.0, 3.0, 1.0])
    adv, _, _ = compute_advantages(rewards, full_mask(4, 1), algo("reinforce_baseline"), 2)
    expected = torch.tensor([0.5, -0.5, 1.0, -1.0]) / math.sqrt(0.625)
    torch.testing.assert_close(adv[:, 0], expected, atol=1e-5, rtol=0)
    centred, _, _ = compute_advantages(rewards, full_mask(4, 1), algo("reinforce_baseline", no_std_norm=True), 2)
    torch.testing.assert_close(centred[:, 0], torch.tensor([0.5, -0.5, 1.0, -1.0]))


def test_kl_reward_shaping_and_discount_by_hand():
    # penalty beta * KL_t = 0.5 * [0.1, 0.2, 0.3]; token rewards [-0.05, -0.1, 2 - 0.15 = 1.85]
    cfg = AlgoConfig(advantage=AdvantageConfig(estimator="reinforce"), kl=KLConfig(init_kl_coef=0.5))
    penalty = 0.5 * torch.tensor([[0.1, 0.2, 0.3]])
    mask = full_mask(1, 3)
    _, ret, metrics = compute_advantages(torch.tensor([2.0]), mask, cfg, 1, kl_per_token=penalty)
    torch.testing.assert_close(ret, torch.tensor([[1.7, 1.75, 1.85]]))
    assert metrics["kl/penalty_mean"] == pytest.approx(0.1)
    # gamma 0.5: G2 = 1.85, G1 = -0.1 + 0.5 * 1.85 = 0.825, G0 = -0.05 + 0.5 * 0.825 = 0.3625
    cfg = AlgoConfig(advantage=AdvantageConfig(estimator="reinforce", gamma=0.5))
    _, ret, _ = compute_advantages(torch.tensor([2.0]), mask, cfg, 1, kl_per_token=penalty)
    torch.testing.assert_close(ret, torch.tensor([[0.3625, 0.825, 1.85]]))


def test_kl_penalty_with_group_estimator():
    cfg = AlgoConfig(advantage=AdvantageConfig(estimator="dr_grpo"), kl=KLConfig(init_kl_coef=1.0))
    penalty = torch.full((2, 2), 0.25)
    _, ret, _ = compute_advantages(torch.tensor([1.0, 0.0]), full_mask(2, 2), cfg, 2, kl_per_token=penalty)
    # scores 0.5, -0.5 on the last token; -0.25 on every token; returns summed backwards
    torch.testing.assert_close(ret, torch.tensor([[0.0, 0.25], [-1.0, -0.75]]))


def test_kl_from_log_probs_feeds_the_penalty():
    log_probs = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -1.0]])
    kl = kl_penalty_per_token(log_probs, ref, full_mask(1, 2), KLConfig(estimator="k1"))
    torch.testing.assert_close(kl, torch.tensor([[0.5, -1.0]]))


def test_reward_clip():
    cfg = algo("dr_grpo", reward_clip=1.0)
    adv, _, metrics = compute_advantages(torch.tensor([5.0, -5.0, 0.5, 0.0]), full_mask(4, 1), cfg, 2)
    torch.testing.assert_close(adv[:, 0], torch.tensor([1.0, -1.0, 0.25, -0.25]))
    assert metrics["reward/clipped_frac"] == 0.5


def test_reward_lands_on_last_valid_token_with_left_padding():
    mask = torch.tensor([[0, 1, 1, 0]], dtype=torch.bool)
    _, ret, _ = compute_advantages(torch.tensor([3.0]), mask, algo("reinforce", gamma=0.5), 1)
    torch.testing.assert_close(ret, torch.tensor([[0.0, 1.5, 3.0, 0.0]]))


# ----------------------------------------------------------------------------- errors


def test_error_when_batch_is_not_whole_groups():
    with pytest.raises(ValueError, match=r"10 samples, not a whole number of groups of n_samples_per_prompt=4"):
        compute_advantages(torch.zeros(10), full_mask(10, 2), algo(), 4)


@pytest.mark.parametrize("estimator", ["group_norm", "dr_grpo", "rloo", "reinforce_baseline"])
def test_group_estimators_need_two_samples(estimator):
    with pytest.raises(ValueError, match=rf"estimator='{estimator}'.*n_samples_per_prompt >= 2"):
        compute_advantages(torch.zeros(3), full_mask(3, 2), algo(estimator), 1)


def test_non_finite_reward_is_named():
    with pytest.raises(ValueError, match=r"rewards\[2\]=nan"):
        compute_advantages(torch.tensor([1.0, 0.0, float("nan"), 1.0]), full_mask(4, 2), algo(), 2)


def test_shape_errors():
    with pytest.raises(ValueError, match="rewards has 3 entries but response_mask has 4 rows"):
        compute_advantages(torch.zeros(3), full_mask(4, 2), algo(), 1)
    with pytest.raises(ValueError, match=r"rewards must be a 1-D tensor"):
        compute_advantages(torch.zeros(4, 1), full_mask(4, 2), algo(), 2)
    with pytest.raises(ValueError, match=r"kl_per_token has shape \(4, 3\)"):
        compute_advantages(torch.zeros(4), full_mask(4, 2), algo("reinforce"), 1, kl_per_token=torch.zeros(4, 3))


def test_kl_penalty_and_kl_loss_are_exclusive():
    cfg = AlgoConfig(kl=KLConfig(init_kl_coef=0.1, use_kl_loss=True))
    with pytest.raises(ValueError, match="use_kl_loss=True puts the KL in the loss"):
        compute_advantages(torch.zeros(2), full_mask(2, 2), cfg, 2, kl_per_token=torch.zeros(2, 2))
    cfg = AlgoConfig(kl=KLConfig(init_kl_coef=0.1, use_kl_loss=False))
    with pytest.raises(ValueError, match="pass kl_per_token"):
        compute_advantages(torch.zeros(2), full_mask(2, 2), cfg, 2)


# ----------------------------------------------------------------------------- invariants


@st.composite
def grouped_batch(draw, max_groups: int = 5, max_n: int = 6, width: int = 6):
    n = draw(st.integers(2, max_n))
    groups = draw(st.integers(1, max_groups))
    rewards = draw(st.lists(st.floats(-10, 10, width=32), min_size=n * groups, max_size=n * groups))
    lengths = draw(st.lists(st.integers(1, width), min_size=n * groups, max_size=n * groups))
    return torch.tensor(rewards), lengths_mask(lengths, width), n


@settings(max_examples=60, deadline=None)
@given(batch=grouped_batch(), estimator=st.sampled_from(["group_norm", "dr_grpo", "rloo"]))
def test_group_advantages_have_zero_mean_per_group(batch, estimator):
    rewards, mask, n = batch
    adv, _, _ = compute_advantages(rewards, mask, algo(estimator), n)
    per_response = adv[:, 0].reshape(-1, n)  # gamma 1, no KL: every valid token carries s_i
    assert torch.allclose(per_response.sum(dim=-1), torch.zeros(per_response.shape[0]), atol=1e-3)
    assert torch.all(adv[~mask] == 0)
    if estimator == "group_norm" and bool((rewards.reshape(-1, n).std(dim=-1) > 1e-2).any()):
        spread = rewards.reshape(-1, n).std(dim=-1)
        big = spread > 1e-2
        torch.testing.assert_close(per_response[big].std(dim=-1), torch.ones(int(big.sum())), atol=1e-3, rtol=0)


@settings(max_examples=40, deadline=None)
@given(batch=grouped_batch(), estimator=st.sampled_from(["reinforce", "reinforce_baseline"]))
def test_whitened_advantages_have_zero_mean_unit_std(batch, estimator):
    rewards, mask, n = batch
    adv, ret, _ = compute_advantages(rewards, mask, algo(estimator), n)
    valid = adv[mask]
    assert abs(float(valid.mean())) < 1e-3
    if float(ret[mask].std(unbiased=False)) > 1e-2:
        assert float(valid.std(unbiased=False)) == pytest.approx(1.0, abs=1e-3)


@settings(max_examples=40, deadline=None)
@given(
    batch=grouped_batch(),
    extra=st.integers(1, 4),
    estimator=st.sampled_from(["group_norm", "dr_grpo", "rloo", "reinforce", "reinforce_baseline"]),
    gamma=st.sampled_from([1.0, 0.9]),
)
def test_extra_padding_changes_nothing(batch, extra, estimator, gamma):
    rewards, mask, n = batch
    wider = torch.cat([mask, torch.zeros(mask.shape[0], extra, dtype=torch.bool)], dim=1)
    kl = torch.linspace(0.0, 1.0, mask.numel()).reshape(mask.shape)
    kl_wide = torch.cat([kl, torch.full((mask.shape[0], extra), 123.0)], dim=1)  # garbage on padding
    cfg = AlgoConfig(advantage=AdvantageConfig(estimator=estimator, gamma=gamma), kl=KLConfig(init_kl_coef=0.1))
    adv, ret, _ = compute_advantages(rewards, mask, cfg, n, kl_per_token=kl)
    adv_w, ret_w, _ = compute_advantages(rewards, wider, cfg, n, kl_per_token=kl_wide)
    torch.testing.assert_close(adv_w[:, : mask.shape[1]], adv, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ret_w[:, : mask.shape[1]], ret, atol=1e-5, rtol=1e-5)
    assert torch.all(adv_w[:, mask.shape[1] :] == 0) and torch.all(ret_w[:, mask.shape[1] :] == 0)
