"""The per-micro-batch policy loss: clipped surrogate (+ Pre-CLIP, dual clip, truncated IS), KL, entropy.

Per token t of a response, with advantage A_t and the log-ratio against the policy that generated the
experience (as recomputed by the trainer), d_t = log pi_theta(o_t) - log pi_old(o_t):

  Pre-CLIP (StableReinforce)   d_t <- clamp(d_t, log delta_lo, log delta_hi)   (default delta = 1e-3, 1e3)
  ratio                        rho_t = exp(d_t)
  clipped surrogate (PPO/DAPO) L_t = -min(rho_t A_t, clip(rho_t, 1 - eps_low, 1 + eps_high) A_t)
  dual clip (c > 1)            L_t = min(L_t, -c A_t)  where A_t < 0
  GSPO (policy_loss_type gspo) rho_t = s = exp(mean_t d_t) for every token of the sequence, aggregated
                               seq-mean-token-mean (one ratio and one clip decision per sequence)
  importance correction vs the sampler (tis_cap C > 0, floor F; u_t = pi_old(o_t) / pi_sampler(o_t), no gradient):
    tis            L_t <- clamp(u_t, F, C) L_t
    icepop         L_t <- u_t 1[F <= u_t <= C] L_t
    seq-mask-tis   L_t <- u_t 1[F <= exp(mean_t log u_t) <= C] L_t      (survivors keep their token weight)
    (with GSPO the sequence ratio is taken against the sampler instead, d_t = log pi_theta - log pi_sampler,
    and no weight is applied, as OpenRLHF does)
  logged whenever sampler log-probs come in: the spread of u_t over response tokens (``sampler_ratio_std`` =
  sqrt(mean_t (u_t - mean u)^2), ``sampler_ratio_max``): how far off-policy a stale or partial rollout is

then  loss = agg(L) + beta * agg(KL_t) [use_kl_loss] - alpha * agg(H_t) [entropy_coef = alpha > 0],
with agg the ``algo.loss_agg_mode`` aggregation.

Without Pre-CLIP a token with A_t < 0 and a huge ratio is not clipped at all (min picks rho_t A_t), so one
log-ratio spike of +50 gives a loss of ~5e21 |A_t|; Pre-CLIP bounds it by delta_hi |A_t| and stops the
gradient through the clamped token.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from openrlhf.algorithms.aggregation import aggregate_loss
from openrlhf.algorithms.kl import kl_estimate
from openrlhf.algorithms.masked import check_mask, check_token_tensor, masked_fill_padding, masked_mean
from openrlhf.config import AlgoConfig, ClipConfig, PreClipConfig


def policy_log_ratio(log_probs: Tensor, old_log_probs: Tensor, pre_clip: PreClipConfig) -> Tensor:
    """d_t = log pi_theta - log pi_old, clamped to [log_ratio_min, log_ratio_max] when Pre-CLIP is on."""
    log_ratio = log_probs.float() - old_log_probs.float()
    if not pre_clip.enable:
        return log_ratio
    if not pre_clip.log_ratio_min < pre_clip.log_ratio_max:
        raise ValueError(
            f"algo.pre_clip.log_ratio_min={pre_clip.log_ratio_min} must be < "
            f"algo.pre_clip.log_ratio_max={pre_clip.log_ratio_max}"
        )
    return log_ratio.clamp(pre_clip.log_ratio_min, pre_clip.log_ratio_max)


def clipped_surrogate_loss(ratio: Tensor, advantages: Tensor, clip: ClipConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """L_t = -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A); with dual clip c > 1, L_t = min(L_t, -c A) for A < 0.

    Returns the token losses and bool masks of where each clip was active (its gradient is zero there).
    """
    if clip.dual_clip != 0 and not clip.dual_clip > 1:
        raise ValueError(f"algo.clip.dual_clip={clip.dual_clip}: the dual-clip constant must be > 1 (or 0 for off)")
    advantages = advantages.float()
    unclipped = -ratio * advantages
    clipped = -ratio.clamp(1.0 - clip.eps_low, 1.0 + clip.eps_high) * advantages
    loss = torch.maximum(unclipped, clipped)
    with torch.no_grad():
        active = {
            "clip_low": (advantages < 0) & (ratio < 1.0 - clip.eps_low),
            "clip_high": (advantages > 0) & (ratio > 1.0 + clip.eps_high),
        }
    if clip.dual_clip > 0:
        bound = -clip.dual_clip * advantages
        negative = advantages < 0
        loss = torch.where(negative, torch.minimum(loss, bound), loss)
        with torch.no_grad():
            active["dual_clip"] = negative & (ratio > clip.dual_clip)
    return loss, active


def truncated_is_weights(
    old_log_probs: Tensor,
    sampler_log_probs: Tensor,
    cap: float,
    floor: float = 0.0,
    mode: str = "tis",
    mask: Tensor | None = None,
) -> Tensor:
    """The importance weights against the sampler (module docstring): u_t = exp(log pi_old - log pi_sampler)
    clamped to [floor, cap] (tis), zeroed outside it (icepop), or zeroed for whole sequences whose
    geometric-mean weight is outside it (seq-mask-tis, needs ``mask``; the survivors keep u_t, as in
    OpenRLHF). Corrects for the sampler (vLLM) and the trainer disagreeing; no gradient."""
    if not cap > 0:
        raise ValueError(f"algo.clip.tis_cap must be > 0 to use truncated importance sampling; got {cap!r}")
    if not 0 <= floor < cap:
        raise ValueError(f"algo.clip.tis_floor={floor!r} must be in [0, tis_cap={cap!r})")
    log_u = (old_log_probs.float() - sampler_log_probs.float()).detach()
    if mode == "tis":
        return torch.exp(log_u.clamp(max=math.log(cap))).clamp(min=floor)
    weights = torch.exp(log_u.clamp(-20.0, 20.0))  # finite, so the zeroed entries stay 0 (not inf * 0)
    zeros = torch.zeros_like(weights)
    if mode == "icepop":
        return torch.where((weights >= floor) & (weights <= cap), weights, zeros)
    if mode == "seq-mask-tis":
        if mask is None:
            raise ValueError("seq-mask-tis needs the response mask (a sequence's mean over its own tokens)")
        seq_weight = torch.exp(masked_mean(log_u, mask, dim=-1)).unsqueeze(-1)
        return torch.where((seq_weight >= floor) & (seq_weight <= cap), weights, zeros)
    raise ValueError(f"algo.clip.tis_mode={mode!r}: use tis, icepop or seq-mask-tis")


def sequence_log_ratio(log_ratio: Tensor, mask: Tensor) -> Tensor:
    """GSPO: log s = mean_t d_t over each sequence's response tokens, broadcast back to [B, T]."""
    return masked_mean(log_ratio, mask, dim=-1).unsqueeze(-1).expand_as(log_ratio)


def loss_agg_mode_of(algo_cfg: AlgoConfig) -> str:
    """The aggregation the loss uses: GSPO's is seq-mean-token-mean (as OpenRLHF), else algo.loss_agg_mode."""
    return "seq-mean-token-mean" if algo_cfg.policy_loss_type == "gspo" else algo_cfg.loss_agg_mode


def _frac(flags: Tensor, mask: Tensor) -> float:
    return float(masked_mean(flags.float(), mask))


def _check_inputs(named: dict[str, Tensor | None], mask: Tensor) -> None:
    check_mask(mask)
    for name, tensor in named.items():
        if tensor is not None:
            check_token_tensor(name, tensor, mask)


def compute_policy_loss(
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    algo_cfg: AlgoConfig,
    *,
    ref_log_probs: Tensor | None = None,
    sampler_log_probs: Tensor | None = None,
    entropy: Tensor | None = None,
    kl_coef: float = 0.0,
    global_token_count: int | float | Tensor | None = None,
    global_seq_count: int | float | Tensor | None = None,
    max_response_len: int | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The whole loss of one micro-batch (formulas in the module docstring) and its metrics.

    All tensors are [B, T] over response tokens. ``kl_coef`` is beta for the KL loss term: it must be 0
    unless ``algo.kl.use_kl_loss`` (else the KL is a reward penalty and would count twice), and then
    ``ref_log_probs`` is required. ``entropy`` [B, T] (models.logprobs.entropy_from_logits, with gradient) is
    reported, and used as a bonus when ``algo.entropy_coef`` > 0. Truncated IS applies when
    ``sampler_log_probs`` is given and ``algo.clip.tis_cap`` > 0. ``global_token_count``,
    ``global_seq_count`` and ``max_response_len`` go to :func:`aggregate_loss` for the returned loss;
    the metrics (plain floats: loss, pg_loss, clip_frac, approx_kl, ...) are this micro-batch's own
    means, so averaging them over micro-batches gives sensible numbers.
    """
    _check_inputs(
        {
            "log_probs": log_probs,
            "old_log_probs": old_log_probs,
            "advantages": advantages,
            "ref_log_probs": ref_log_probs,
            "sampler_log_probs": sampler_log_probs,
            "entropy": entropy,
        },
        response_mask,
    )
    kl_cfg = algo_cfg.kl
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0; got {kl_coef!r}")
    if kl_coef > 0 and not kl_cfg.use_kl_loss:
        raise ValueError(
            f"kl_coef={kl_coef} was passed but algo.kl.use_kl_loss=False: the KL is then a reward penalty "
            "(compute_advantages), so pass kl_coef=0 here"
        )
    if kl_coef > 0 and ref_log_probs is None:
        raise ValueError("algo.kl.use_kl_loss=True with kl_coef > 0 needs ref_log_probs (the reference model's)")
    if algo_cfg.entropy_coef > 0 and entropy is None:
        raise ValueError(f"algo.entropy_coef={algo_cfg.entropy_coef} > 0 needs the per-token entropy tensor")

    gspo = algo_cfg.policy_loss_type == "gspo"
    agg_mode = loss_agg_mode_of(algo_cfg)
    tis_on = sampler_log_probs is not None and algo_cfg.clip.tis_cap > 0

    def agg(values: Tensor, *, local: bool = False) -> Tensor:
        return aggregate_loss(
            values,
            response_mask,
            agg_mode,
            global_token_count=None if local else global_token_count,
            global_seq_count=None if local else global_seq_count,
            max_response_len=max_response_len,
        )

    # padding is set to neutral values first, so whatever it holds (inf, NaN) reaches neither loss nor gradient
    base_log_probs = sampler_log_probs if gspo and tis_on else old_log_probs
    log_ratio = masked_fill_padding(policy_log_ratio(log_probs, base_log_probs, algo_cfg.pre_clip), response_mask)
    if gspo:
        log_ratio = masked_fill_padding(sequence_log_ratio(log_ratio, response_mask), response_mask)
    advantages = masked_fill_padding(advantages.float(), response_mask)
    ratio = torch.exp(log_ratio)
    token_loss, active = clipped_surrogate_loss(ratio, advantages, algo_cfg.clip)
    metrics: dict[str, float] = {}
    if sampler_log_probs is not None:
        with torch.no_grad():
            log_u = old_log_probs.float() - sampler_log_probs.float()
            metrics["sampler_abs_log_prob_diff"] = float(masked_mean(log_u.abs(), response_mask))
            u = torch.exp(log_u.clamp(max=kl_cfg.log_ratio_clamp))
            u_mean = masked_mean(u, response_mask)
            metrics["sampler_ratio_std"] = float(masked_mean((u - u_mean) ** 2, response_mask).sqrt())
            metrics["sampler_ratio_max"] = float(masked_fill_padding(u, response_mask).max()) if u.numel() else 0.0
        if tis_on and not gspo:
            clip = algo_cfg.clip
            weights = truncated_is_weights(
                old_log_probs, sampler_log_probs, clip.tis_cap, clip.tis_floor, clip.tis_mode, response_mask
            )
            weights = masked_fill_padding(weights, response_mask)
            token_loss = token_loss * weights
            metrics["tis_weight_mean"] = float(masked_mean(weights, response_mask))
            metrics["tis_capped_frac"] = _frac(weights >= clip.tis_cap, response_mask)
            if clip.tis_mode != "tis":
                metrics["tis_masked_frac"] = _frac(weights == 0, response_mask)
    loss = agg(token_loss)
    # metrics are this micro-batch's own means, not its share of the global loss
    metrics["pg_loss"] = agg(token_loss.detach(), local=True).item()
    local_total = metrics["pg_loss"]

    if ref_log_probs is not None:
        with torch.set_grad_enabled(kl_coef > 0 and torch.is_grad_enabled()):
            kl_tokens = kl_estimate(log_probs, ref_log_probs, kl_cfg.estimator, kl_cfg.log_ratio_clamp, response_mask)
        metrics["kl"] = float(masked_mean(kl_tokens.detach(), response_mask))
        if kl_coef > 0:
            loss = loss + kl_coef * agg(kl_tokens)
            metrics["kl_loss"] = agg(kl_tokens.detach(), local=True).item()
            local_total += kl_coef * metrics["kl_loss"]
    if entropy is not None:
        metrics["entropy"] = float(masked_mean(entropy.detach().float(), response_mask))
        if algo_cfg.entropy_coef > 0:
            loss = loss - algo_cfg.entropy_coef * agg(entropy.float())
            local_total -= algo_cfg.entropy_coef * agg(entropy.detach().float(), local=True).item()
    metrics["loss"] = local_total

    with torch.no_grad():
        unclamped = masked_fill_padding(log_probs.float() - old_log_probs.float(), response_mask)
        raw_log_ratio = unclamped.clamp(-kl_cfg.log_ratio_clamp, kl_cfg.log_ratio_clamp)
        metrics.update(
            {
                "clip_frac": _frac(active["clip_low"] | active["clip_high"], response_mask),
                "clip_frac_low": _frac(active["clip_low"], response_mask),
                "clip_frac_high": _frac(active["clip_high"], response_mask),
                "ratio_mean": float(masked_mean(ratio, response_mask)),
                "ratio_max": float(masked_fill_padding(ratio, response_mask).max()) if ratio.numel() else 0.0,
                "approx_kl": float(masked_mean(torch.expm1(raw_log_ratio) - raw_log_ratio, response_mask)),
            }
        )
        if "dual_clip" in active:
            metrics["dual_clip_frac"] = _frac(active["dual_clip"], response_mask)
        if algo_cfg.pre_clip.enable:
            pre_clipped = unclamped != log_ratio
            metrics["pre_clip_frac"] = _frac(pre_clipped, response_mask)
    return loss, metrics
