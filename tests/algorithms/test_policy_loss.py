"""Policy loss against hand-computed values; invariants (hypothesis); Pre-CLIP against a log-ratio spike."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from openrlhf.algorithms import aggregate_loss, compute_advantages, compute_policy_loss
from openrlhf.config import AdvantageConfig, AlgoConfig, ClipConfig, KLConfig, PreClipConfig

AGG_MODES = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]

# Four tokens of one response: (ratio, advantage) chosen to hit every branch of the clipped surrogate.
RATIOS = torch.tensor([[1.5, 0.5, 1.1, 3.0]])
ADVANTAGES = torch.tensor([[1.0, -1.0, 2.0, -1.0]])
MASK = torch.ones(1, 4, dtype=torch.bool)


def clip_cfg(**clip) -> AlgoConfig:
    return AlgoConfig(clip=ClipConfig(eps_low=0.2, eps_high=0.28, **clip))


def leaf_log_probs() -> torch.Tensor:
    return torch.log(RATIOS).clone().requires_grad_(True)  # old log-probs are 0, so the ratio is RATIOS


def test_asymmetric_clip_by_hand():
    # token losses: -min(1.5, 1.28) = -1.28 (clip high); -min(-0.5, -0.8) = 0.8 (clip low);
    # -min(2.2, 2.2) = -2.2; -min(-3, -1.28) = 3 (A < 0 and ratio large: not clipped)
    log_probs = leaf_log_probs()
    loss, metrics = compute_policy_loss(log_probs, torch.zeros(1, 4), ADVANTAGES, MASK, clip_cfg())
    assert loss.item() == pytest.approx((-1.28 + 0.8 - 2.2 + 3.0) / 4)
    assert metrics["clip_frac"] == 0.5 and metrics["clip_frac_low"] == 0.25 and metrics["clip_frac_high"] == 0.25
    loss.backward()
    # d L_t / d log pi_t = -ratio * A where unclipped, 0 where clipped; divided by 4 tokens
    torch.testing.assert_close(log_probs.grad, torch.tensor([[0.0, 0.0, -2.2 / 4, 3.0 / 4]]))


def test_dual_clip_by_hand():
    log_probs = leaf_log_probs()
    loss, metrics = compute_policy_loss(log_probs, torch.zeros(1, 4), ADVANTAGES, MASK, clip_cfg(dual_clip=2.0))
    assert loss.item() == pytest.approx((-1.28 + 0.8 - 2.2 + 2.0) / 4)  # last token: min(3, 2 * 1)
    assert metrics["dual_clip_frac"] == 0.25
    loss.backward()
    torch.testing.assert_close(log_probs.grad, torch.tensor([[0.0, 0.0, -2.2 / 4, 0.0]]))


def test_truncated_importance_sampling_by_hand():
    # w = min(pi_old / pi_sampler, 3) = [2, 0.5, 1, 3 (10 capped)]
    sampler = -torch.log(torch.tensor([[2.0, 0.5, 1.0, 10.0]]))
    loss, metrics = compute_policy_loss(
        leaf_log_probs(), torch.zeros(1, 4), ADVANTAGES, MASK, clip_cfg(tis_cap=3.0), sampler_log_probs=sampler
    )
    assert loss.item() == pytest.approx((-1.28 * 2 + 0.8 * 0.5 - 2.2 * 1 + 3.0 * 3) / 4, rel=1e-5)
    assert metrics["tis_weight_mean"] == pytest.approx(6.5 / 4)
    assert metrics["tis_capped_frac"] == 0.25
    # without a cap the sampler log-probs are only reported
    _, metrics = compute_policy_loss(
        leaf_log_probs(), torch.zeros(1, 4), ADVANTAGES, MASK, clip_cfg(), sampler_log_probs=sampler
    )
    assert "tis_weight_mean" not in metrics
    assert metrics["sampler_abs_log_prob_diff"] == pytest.approx((math.log(2) * 2 + math.log(10)) / 4)
    u = torch.tensor([2.0, 0.5, 1.0, 10.0])  # the importance ratios' spread, by torch's own (population) std
    assert metrics["sampler_ratio_std"] == pytest.approx(float(u.std(unbiased=False)), rel=1e-5)
    assert metrics["sampler_ratio_max"] == pytest.approx(10.0)


def test_kl_loss_term_and_entropy_bonus_by_hand():
    cfg = AlgoConfig(kl=KLConfig(use_kl_loss=True, estimator="k1"), entropy_coef=0.01)
    log_probs = leaf_log_probs()
    ref = log_probs.detach() - 0.2  # k1 = 0.2 on every token
    entropy = torch.ones(1, 4, requires_grad=True)
    base, _ = compute_policy_loss(log_probs, torch.zeros(1, 4), ADVANTAGES, MASK, AlgoConfig())
    loss, metrics = compute_policy_loss(
        log_probs, torch.zeros(1, 4), ADVANTAGES, MASK, cfg, ref_log_probs=ref, entropy=entropy, kl_coef=0.5
    )
    assert loss.item() == pytest.approx(base.item() + 0.5 * 0.2 - 0.01 * 1.0, abs=1e-6)
    assert metrics["kl"] == pytest.approx(0.2) and metrics["kl_loss"] == pytest.approx(0.2)
    assert metrics["entropy"] == pytest.approx(1.0)
    loss.backward()
    torch.testing.assert_close(entropy.grad, torch.full((1, 4), -0.01 / 4))


def test_metrics_with_reference_but_no_kl_loss():
    ref = torch.log(RATIOS) - 0.1
    loss, metrics = compute_policy_loss(
        leaf_log_probs(), torch.zeros(1, 4), ADVANTAGES, MASK, clip_cfg(), ref_log_probs=ref
    )
    assert "kl_loss" not in metrics
    assert metrics["kl"] == pytest.approx(math.exp(-0.1) - 1 + 0.1, rel=1e-4)  # k3 default
    assert metrics["ratio_max"] == pytest.approx(3.0) and metrics["ratio_mean"] == pytest.approx(6.1 / 4)
    # approx_kl = mean((rho - 1) - log rho)
    expected = sum((r - 1) - math.log(r) for r in RATIOS[0].tolist()) / 4
    assert metrics["approx_kl"] == pytest.approx(expected, rel=1e-5)


def test_global_token_count_scales_the_loss_not_the_metrics():
    local, local_metrics = compute_policy_loss(leaf_log_probs(), torch.zeros(1, 4), ADVANTAGES, MASK, clip_cfg())
    share, metrics = compute_policy_loss(
        leaf_log_probs(), torch.zeros(1, 4), ADVANTAGES, MASK, clip_cfg(), global_token_count=16
    )
    assert share.item() == pytest.approx(local.item() * 4 / 16)  # this micro-batch's share of 16 tokens
    assert metrics["loss"] == pytest.approx(local_metrics["loss"]) == pytest.approx(local.item())


def test_errors_name_the_field():
    args = (leaf_log_probs(), torch.zeros(1, 4), ADVANTAGES, MASK)
    with pytest.raises(ValueError, match=r"dual_clip"):
        ClipConfig(eps_low=0.2, eps_high=0.28, dual_clip=0.5)  # the config validates it; the loss does not repeat it
    with pytest.raises(ValueError, match=r"algo.kl.use_kl_loss=False"):
        compute_policy_loss(*args, AlgoConfig(), kl_coef=0.1)
    with pytest.raises(ValueError, match=r"needs ref_log_probs"):
        compute_policy_loss(*args, AlgoConfig(kl=KLConfig(use_kl_loss=True)), kl_coef=0.1)
    with pytest.raises(ValueError, match=r"algo.entropy_coef=0.1"):
        compute_policy_loss(*args, AlgoConfig(entropy_coef=0.1))
    with pytest.raises(ValueError, match=r"old_log_probs has shape \(1, 3\)"):
        compute_policy_loss(leaf_log_probs(), torch.zeros(1, 3), ADVANTAGES, MASK, AlgoConfig())
    with pytest.raises(ValueError, match=r"log_ratio_min"):
        PreClipConfig(enable=True, log_ratio_min=1.0, log_ratio_max=-1.0)
    with pytest.raises(ValueError, match=r"algo.loss_agg_mode='nope'"):
        aggregate_loss(torch.zeros(1, 4), MASK, "nope")


# ----------------------------------------------------------------------------- Pre-CLIP vs a log-ratio spike


def spiked_batch():
    """Reinforce++ advantages for 8 responses, and log-probs whose ratio is 1 except four spiked tokens."""
    gen = torch.Generator().manual_seed(0)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    mask = torch.ones(8, 6, dtype=torch.bool)
    mask[4:, 4:] = False
    advantages, _, _ = compute_advantages(
        rewards, mask, AlgoConfig(advantage=AdvantageConfig(estimator="reinforce")), 1
    )
    assert bool((advantages[0] > 0).all()) and bool((advantages[1] < 0).all())
    old = -torch.rand(8, 6, generator=gen) * 3
    log_probs = old.clone()
    log_probs[1, 2] += 50.0  # negative advantage, ratio e^50: PPO's min() does not clip this one
    log_probs[1, 4] -= 50.0  # negative advantage, ratio e^-50
    log_probs[0, 3] -= 50.0  # positive advantage, ratio e^-50
    log_probs[0, 1] += 50.0  # positive advantage, ratio e^50
    return log_probs.requires_grad_(True), old, advantages, mask


def test_pre_clip_keeps_loss_and_gradient_bounded_where_plain_reinforce_pp_explodes():
    plain_cfg = AlgoConfig(advantage=AdvantageConfig(estimator="reinforce"))
    stable_cfg = AlgoConfig(advantage=AdvantageConfig(estimator="reinforce"), pre_clip=PreClipConfig(enable=True))
    log_probs, old, advantages, mask = spiked_batch()
    a_max = float(advantages.abs().max())
    n_tokens = int(mask.sum())

    plain_loss, _ = compute_policy_loss(log_probs, old, advantages, mask, plain_cfg)
    plain_loss.backward()
    plain_grad = log_probs.grad.clone()
    log_probs.grad = None
    stable_loss, metrics = compute_policy_loss(log_probs, old, advantages, mask, stable_cfg)
    stable_loss.backward()
    stable_grad = log_probs.grad

    bound = math.exp(PreClipConfig().log_ratio_max) * a_max  # 1e3 * max |A| per token
    assert torch.isfinite(stable_loss) and abs(stable_loss.item()) <= bound
    assert torch.all(torch.isfinite(stable_grad)) and stable_grad.abs().max().item() <= bound / n_tokens
    assert metrics["pre_clip_frac"] == pytest.approx(4 / n_tokens)
    # the +50 token with A < 0 escapes PPO's clip: e^50 ~ 5e21 times |A|
    assert plain_loss.item() > 1e18
    assert plain_grad.abs().max().item() > 1e18


def test_pre_clip_changes_nothing_inside_its_band():
    gen = torch.Generator().manual_seed(1)
    old = -torch.rand(4, 5, generator=gen)
    log_probs = old + 0.3 * torch.randn(4, 5, generator=gen)
    adv = torch.randn(4, 5, generator=gen)
    mask = torch.ones(4, 5, dtype=torch.bool)
    plain, _ = compute_policy_loss(log_probs, old, adv, mask, AlgoConfig())
    stable, _ = compute_policy_loss(log_probs, old, adv, mask, AlgoConfig(pre_clip=PreClipConfig(enable=True)))
    assert plain.item() == stable.item()


@pytest.mark.parametrize("loss_type", ["ppo", "gspo"])
def test_pre_clip_frac_counts_the_tokens_pre_clip_clamped(loss_type):
    """pre_clip_frac is the fraction of tokens whose log-ratio Pre-CLIP clamped, for the ratio the loss uses:
    with GSPO too (its sequence ratio is not compared with each token's raw ratio)."""
    cfg = AlgoConfig(policy_loss_type=loss_type, pre_clip=PreClipConfig(enable=True))
    log_probs, old, advantages, mask = spiked_batch()
    n_tokens = int(mask.sum())
    _, metrics = compute_policy_loss(log_probs, old, advantages, mask, cfg)
    assert metrics["pre_clip_frac"] == pytest.approx(4 / n_tokens)  # the four spiked tokens
    gen = torch.Generator().manual_seed(2)
    in_band = old + 0.3 * torch.randn(old.shape, generator=gen)
    _, metrics = compute_policy_loss(in_band, old, advantages, mask, cfg)
    assert metrics["pre_clip_frac"] == 0.0
    # with the importance correction on, GSPO's ratio is taken against the sampler: a token 50 nats off the
    # sampler (and not off pi_old) is the one clamped for GSPO; for PPO it is only a weight, nothing is clamped
    sampler = old.clone()
    sampler[2, 1] -= 50.0
    tis_cfg = cfg.model_copy(update={"clip": ClipConfig(tis_cap=2.0)})
    _, metrics = compute_policy_loss(in_band, old, advantages, mask, tis_cfg, sampler_log_probs=sampler)
    assert metrics["pre_clip_frac"] == pytest.approx(1 / n_tokens if loss_type == "gspo" else 0.0)


# ----------------------------------------------------------------------------- invariants


@st.composite
def token_batch(draw, max_b: int = 5, max_t: int = 7):
    b = draw(st.integers(1, max_b))
    t = draw(st.integers(1, max_t))
    seed = draw(st.integers(0, 2**16))
    lengths = draw(st.lists(st.integers(1, t), min_size=b, max_size=b))
    gen = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=gen) * 4
    log_probs = old + torch.randn(b, t, generator=gen)
    adv = torch.randn(b, t, generator=gen) * 2
    mask = torch.arange(t).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return log_probs, old, adv, mask


algo_variants = st.builds(
    lambda mode, pre, dual, high: AlgoConfig(
        loss_agg_mode=mode,
        pre_clip=PreClipConfig(enable=pre),
        clip=ClipConfig(eps_low=0.2, eps_high=high, dual_clip=dual),
    ),
    st.sampled_from(AGG_MODES),
    st.booleans(),
    st.sampled_from([0.0, 3.0]),
    st.sampled_from([0.2, 0.28]),
)


@settings(max_examples=60, deadline=None)
@given(batch=token_batch(), cfg=algo_variants)
def test_zero_advantage_gives_zero_gradient(batch, cfg):
    log_probs, old, _, mask = batch
    log_probs = log_probs.clone().requires_grad_(True)
    loss, _ = compute_policy_loss(log_probs, old, torch.zeros_like(old), mask, cfg)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(log_probs.grad == 0)


@settings(max_examples=60, deadline=None)
@given(batch=token_batch(), cfg=algo_variants)
def test_ratio_one_loss_is_minus_aggregated_advantage(batch, cfg):
    _, old, adv, mask = batch
    loss, metrics = compute_policy_loss(old.clone(), old, adv, mask, cfg)
    torch.testing.assert_close(loss, aggregate_loss(-adv, mask, cfg.loss_agg_mode), atol=1e-5, rtol=1e-5)
    assert metrics["clip_frac"] == 0.0
    if cfg.loss_agg_mode == "token-mean":  # minus the mean advantage over valid tokens
        assert loss.item() == pytest.approx(-float(adv[mask].mean()), abs=1e-5)


@settings(max_examples=60, deadline=None)
@given(batch=token_batch(), cfg=algo_variants, junk=st.sampled_from([float("nan"), float("inf"), -1e4, 7.0]))
def test_mask_excludes_padding(batch, cfg, junk):
    log_probs, old, adv, mask = batch
    results = []
    for fill in (None, junk):
        lp, o, a = log_probs.clone(), old.clone(), adv.clone()
        if fill is not None:  # overwrite every padding position of every input
            lp[~mask], o[~mask], a[~mask] = fill, -fill if fill == fill else fill, fill
        lp.requires_grad_(True)
        ref = lp.detach() - 0.1
        kl_cfg = cfg.model_copy(update={"kl": KLConfig(use_kl_loss=True)})
        loss, _ = compute_policy_loss(lp, o, a, mask, kl_cfg, ref_log_probs=ref, sampler_log_probs=o, kl_coef=0.1)
        loss.backward()
        results.append((loss.detach(), lp.grad))
    (loss_a, grad_a), (loss_b, grad_b) = results
    torch.testing.assert_close(loss_a, loss_b)
    torch.testing.assert_close(grad_a, grad_b)
    assert torch.all(grad_b[~mask] == 0)


def test_the_policys_kl_metric_is_the_drivers_kl_mean_on_ragged_responses():
    """One KL metric: the policy's ``kl`` (on-policy steps log it as kl/mean and feed the adaptive controller) is
    the per-sequence mean the driver computes for the reward penalty, not a token mean, which weights long
    responses more (a 1-token response with KL 1.0 and a 3-token one with KL 0: 0.5 per sequence, 0.25 per token)."""
    from openrlhf.algorithms import kl_metric, kl_penalty_per_token

    mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    log_probs = torch.zeros(2, 3, requires_grad=True)
    ref = torch.tensor([[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # k1 = log pi - log pi_ref = 1 on the first token
    cfg = AlgoConfig(kl=KLConfig(use_kl_loss=True, estimator="k1"))
    _, metrics = compute_policy_loss(log_probs, torch.zeros(2, 3), torch.ones(2, 3), mask, cfg, ref_log_probs=ref)
    drivers = float(kl_metric(kl_penalty_per_token(log_probs.detach(), ref, mask, cfg.kl), mask))
    assert drivers == pytest.approx(0.5)
    assert metrics["kl"] == pytest.approx(drivers)
