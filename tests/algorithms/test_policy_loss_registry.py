"""The policy-loss registries (surrogates, importance corrections) and the loss normalisation the policy
worker relies on: micro-batch shares computed with the global token and sequence counts sum to the loss
(and the gradient) of the whole mini-batch, for every aggregation and surrogate."""

from __future__ import annotations

from typing import get_args

import pytest
import torch

from openrlhf.algorithms import compute_policy_loss
from openrlhf.algorithms import policy_loss as policy_loss_module
from openrlhf.algorithms.policy_loss import (
    IS_CORRECTIONS,
    POLICY_LOSSES,
    Surrogate,
    get_is_correction,
    get_policy_loss,
    register_policy_loss,
)
from openrlhf.config import AlgoConfig, ClipConfig, KLConfig

AGG_MODES = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]


def test_the_registries_hold_exactly_the_names_the_config_allows():
    assert set(POLICY_LOSSES) == set(get_args(AlgoConfig.model_fields["policy_loss_type"].annotation))
    assert set(IS_CORRECTIONS) == set(get_args(ClipConfig.model_fields["tis_mode"].annotation))
    assert get_policy_loss("gspo").loss_agg_mode == "seq-mean-token-mean"
    with pytest.raises(ValueError, match=r"algo.policy_loss_type='nope'.*ppo"):
        get_policy_loss("nope")
    with pytest.raises(ValueError, match=r"algo.clip.tis_mode='nope'.*icepop"):
        get_is_correction("nope")


def test_a_registered_surrogate_is_what_compute_policy_loss_uses(monkeypatch):
    monkeypatch.setattr(policy_loss_module, "POLICY_LOSSES", dict(POLICY_LOSSES))

    @register_policy_loss("plain_pg")
    def plain_pg(log_ratio, advantages, mask, clip):
        """L_t = -rho_t A_t, no clip."""
        ratio = torch.exp(log_ratio)
        return Surrogate(-ratio * advantages, ratio, {"clip_low": ratio < 0, "clip_high": ratio < 0})

    log_probs = torch.tensor([[0.5, -0.5, 0.0]], requires_grad=True)
    adv = torch.tensor([[1.0, 2.0, -1.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    cfg = AlgoConfig().model_copy(update={"policy_loss_type": "plain_pg"})
    loss, metrics = compute_policy_loss(log_probs, torch.zeros(1, 3), adv, mask, cfg)
    expected = -(torch.exp(log_probs.detach()) * adv).mean()
    assert loss.item() == pytest.approx(expected.item()) and metrics["pg_loss"] == pytest.approx(expected.item())
    loss.backward()
    torch.testing.assert_close(log_probs.grad, -(torch.exp(log_probs.detach()) * adv) / 3)


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 3, 5, 1, 6, 2, 4])
    mask = torch.arange(7).unsqueeze(0) < lengths.unsqueeze(1)
    old = -torch.rand(7, 7, generator=g) * 2
    new = old + 0.4 * torch.randn(7, 7, generator=g)
    sampler = old + 0.5 * torch.randn(7, 7, generator=g)
    ref = old + 0.2 * torch.randn(7, 7, generator=g)
    entropy = torch.rand(7, 7, generator=g)
    adv = torch.randn(7, 1, generator=g).expand(7, 7).contiguous()
    return new, old, sampler, ref, entropy, adv, mask


@pytest.mark.parametrize("mode", AGG_MODES)
@pytest.mark.parametrize("loss_type", ["ppo", "gspo"])
def test_micro_batch_shares_sum_to_the_mini_batch_loss_and_gradient(mode, loss_type):
    new, old, sampler, ref, entropy, adv, mask = batch()
    cfg = AlgoConfig(
        loss_agg_mode=mode,
        policy_loss_type=loss_type,
        clip=ClipConfig(eps_low=0.2, eps_high=0.28, dual_clip=3.0, tis_cap=2.0, tis_floor=0.5),
        kl=KLConfig(use_kl_loss=True),
        entropy_coef=0.01,
    )

    def loss_of(rows: slice, leaf: torch.Tensor, **counts) -> torch.Tensor:
        tensors = [t[rows] for t in (old, adv, mask)]
        extra = {"ref_log_probs": ref[rows], "sampler_log_probs": sampler[rows], "entropy": entropy[rows]}
        loss, _ = compute_policy_loss(leaf[rows], *tensors, cfg, kl_coef=0.1, max_response_len=9, **extra, **counts)
        return loss

    whole_leaf = new.clone().requires_grad_(True)
    whole = loss_of(slice(None), whole_leaf)
    whole.backward()
    counts = {"global_token_count": int(mask.sum()), "global_seq_count": mask.shape[0]}
    split_leaf = new.clone().requires_grad_(True)
    shares = sum(loss_of(rows, split_leaf, **counts) for rows in (slice(0, 3), slice(3, 4), slice(4, 7)))
    shares.backward()
    torch.testing.assert_close(shares, whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(split_leaf.grad, whole_leaf.grad, rtol=1e-5, atol=1e-7)
