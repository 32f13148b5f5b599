"""The per-micro-batch policy loss: a registered surrogate (ppo, gspo), Pre-CLIP, a registered importance
correction against the sampler (tis, icepop, seq-mask-tis), KL and entropy terms.

Per token t of a response, with advantage A_t and the log-ratio against the policy that generated the
experience (as recomputed by the trainer), d_t = log pi_theta(o_t) - log pi_old(o_t):

  Pre-CLIP (StableReinforce)   d_t <- clamp(d_t, log delta_lo, log delta_hi)   (default delta = 1e-3, 1e3)
  surrogate (``algo.policy_loss_type``, :data:`POLICY_LOSSES`), each function's docstring has its formula:
    ppo    rho_t = exp(d_t), L_t = -min(rho_t A_t, clip(rho_t, 1 - eps_low, 1 + eps_high) A_t)  (PPO/DAPO)
           dual clip (c > 1): L_t = min(L_t, -c A_t) where A_t < 0
    gspo   rho_t = s = exp(mean_t d_t) for every token of the sequence, clipped as ppo, aggregated
           seq-mean-token-mean (one ratio and one clip decision per sequence)
  importance correction vs the sampler (``algo.clip.tis_mode``, :data:`IS_CORRECTIONS`; on when tis_cap C > 0
  and sampler log-probs come in; floor F; u_t = pi_old(o_t) / pi_sampler(o_t), no gradient):
    tis            L_t <- clamp(u_t, F, C) L_t
    icepop         L_t <- u_t 1[F <= u_t <= C] L_t
    seq-mask-tis   L_t <- u_t 1[F <= exp(mean_t log u_t) <= C] L_t      (survivors keep their token weight)
    (with GSPO the sequence ratio is taken against the sampler instead, d_t = log pi_theta - log pi_sampler,
    and no weight is applied, as OpenRLHF does)
  logged whenever sampler log-probs come in: the spread of u_t over response tokens (``sampler_ratio_std`` =
  sqrt(mean_t (u_t - mean u)^2), ``sampler_ratio_max``): how far off-policy a stale or partial rollout is

then  loss = agg(L) + beta * agg(KL_t) [use_kl_loss] - alpha * agg(H_t) [entropy_coef = alpha > 0],
with agg the ``algo.loss_agg_mode`` aggregation (or the one the surrogate implies).

Without Pre-CLIP a token with A_t < 0 and a huge ratio is not clipped at all (min picks rho_t A_t), so one
log-ratio spike of +50 gives a loss of ~5e21 |A_t|; Pre-CLIP bounds it by delta_hi |A_t| and stops the
gradient through the clamped token.

A new surrogate is one function ``(log_ratio, advantages, mask, clip) -> Surrogate`` decorated with
``@register_policy_loss(name)``; a new correction one function ``(log_u, mask, floor, cap) -> weights``
decorated with ``@register_is_correction(name)`` (and the name added to the config's Literal).
The config (openrlhf/config.py) validates the knobs (clip and Pre-CLIP bounds, the tis band, the names).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from openrlhf.algorithms.aggregation import aggregate_loss
from openrlhf.algorithms.kl import kl_estimate, kl_metric
from openrlhf.algorithms.masked import check_mask, check_token_tensor, masked_fill_padding, masked_mean
from openrlhf.config import AlgoConfig, ClipConfig, PreClipConfig

# ----------------------------------------------------------------------------- registries


class Surrogate(NamedTuple):
    """What a surrogate gives back: token losses L_t [B, T] (with gradient), the ratio rho_t it used [B, T],
    and bool [B, T] masks of where each clip was active (its gradient is zero there)."""

    token_loss: Tensor
    ratio: Tensor
    active: dict[str, Tensor]


SurrogateFn = Callable[[Tensor, Tensor, Tensor, ClipConfig], Surrogate]
ISCorrectionFn = Callable[[Tensor, Tensor, float, float], Tensor]


@dataclass(frozen=True)
class PolicyLoss:
    """A registered surrogate and what it implies for the rest of the loss.

    ``loss_agg_mode``: the aggregation it needs (None: ``algo.loss_agg_mode``). ``ratio_vs_sampler``: with the
    importance correction on, d_t is taken against the sampler log-probs and no correction weight is applied.
    """

    fn: SurrogateFn
    loss_agg_mode: str | None = None
    ratio_vs_sampler: bool = False


POLICY_LOSSES: dict[str, PolicyLoss] = {}
IS_CORRECTIONS: dict[str, ISCorrectionFn] = {}


def register_policy_loss(
    name: str, *, loss_agg_mode: str | None = None, ratio_vs_sampler: bool = False
) -> Callable[[SurrogateFn], SurrogateFn]:
    """Register a surrogate under ``algo.policy_loss_type`` = ``name`` (as verl's ``register_policy_loss``)."""

    def decorator(fn: SurrogateFn) -> SurrogateFn:
        POLICY_LOSSES[name] = PolicyLoss(fn, loss_agg_mode, ratio_vs_sampler)
        return fn

    return decorator


def register_is_correction(name: str) -> Callable[[ISCorrectionFn], ISCorrectionFn]:
    """Register an importance correction under ``algo.clip.tis_mode`` = ``name``."""

    def decorator(fn: ISCorrectionFn) -> ISCorrectionFn:
        IS_CORRECTIONS[name] = fn
        return fn

    return decorator


def get_policy_loss(name: str) -> PolicyLoss:
    """The registered surrogate ``name`` (as verl's ``get_policy_loss_fn``)."""
    try:
        return POLICY_LOSSES[name]
    except KeyError:
        raise ValueError(f"algo.policy_loss_type={name!r}: registered are {', '.join(POLICY_LOSSES)}") from None


def get_is_correction(name: str) -> ISCorrectionFn:
    """The registered importance correction ``name``."""
    try:
        return IS_CORRECTIONS[name]
    except KeyError:
        raise ValueError(f"algo.clip.tis_mode={name!r}: registered are {', '.join(IS_CORRECTIONS)}") from None


# ----------------------------------------------------------------------------- surrogates


def clipped_surrogate_loss(ratio: Tensor, advantages: Tensor, clip: ClipConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """L_t = -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A); with dual clip c > 1, L_t = min(L_t, -c A) for A < 0.

    Returns the token losses and bool masks of where each clip was active (its gradient is zero there).
    """
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


@register_policy_loss("ppo")
def ppo_loss(log_ratio: Tensor, advantages: Tensor, mask: Tensor, clip: ClipConfig) -> Surrogate:
    """PPO / DAPO, one ratio per token:

    rho_t = exp(d_t),  L_t = -min(rho_t A_t, clip(rho_t, 1 - eps_low, 1 + eps_high) A_t),
    and with dual clip c > 1, L_t = min(L_t, -c A_t) where A_t < 0.
    """
    ratio = torch.exp(log_ratio)
    token_loss, active = clipped_surrogate_loss(ratio, advantages, clip)
    return Surrogate(token_loss, ratio, active)


def sequence_log_ratio(log_ratio: Tensor, mask: Tensor) -> Tensor:
    """GSPO: log s = mean_t d_t over each sequence's response tokens, broadcast back to [B, T]."""
    return masked_mean(log_ratio, mask, dim=-1).unsqueeze(-1).expand_as(log_ratio)


@register_policy_loss("gspo", loss_agg_mode="seq-mean-token-mean", ratio_vs_sampler=True)
def gspo_loss(log_ratio: Tensor, advantages: Tensor, mask: Tensor, clip: ClipConfig) -> Surrogate:
    """GSPO, one ratio per sequence i, the geometric mean of its token ratios (gradient through the mean):

    s_i = exp((1/|o_i|) sum_t d_it),  rho_it = s_i,  L_it = the ppo surrogate of rho_it,
    aggregated seq-mean-token-mean; with the importance correction on, d_t is taken against the sampler.
    """
    ratio = torch.exp(masked_fill_padding(sequence_log_ratio(log_ratio, mask), mask))
    token_loss, active = clipped_surrogate_loss(ratio, advantages, clip)
    return Surrogate(token_loss, ratio, active)


# ----------------------------------------------------------------------------- importance corrections


@register_is_correction("tis")
def tis_weights(log_u: Tensor, mask: Tensor, floor: float, cap: float) -> Tensor:
    """Truncated importance sampling: w_t = clamp(u_t, F, C), u_t = exp(log_u_t)."""
    return torch.exp(log_u.clamp(max=math.log(cap))).clamp(min=floor)


def _bounded_exp(log_u: Tensor) -> Tensor:
    """u_t, finite (log u clamped to [-20, 20]), so the entries a mask zeroes stay 0 (not inf * 0)."""
    return torch.exp(log_u.clamp(-20.0, 20.0))


@register_is_correction("icepop")
def icepop_weights(log_u: Tensor, mask: Tensor, floor: float, cap: float) -> Tensor:
    """IcePop: w_t = u_t 1[F <= u_t <= C] (tokens outside the band get weight 0)."""
    weights = _bounded_exp(log_u)
    return torch.where((weights >= floor) & (weights <= cap), weights, torch.zeros_like(weights))


@register_is_correction("seq-mask-tis")
def seq_mask_tis_weights(log_u: Tensor, mask: Tensor, floor: float, cap: float) -> Tensor:
    """Sequence-masked IS: w_it = u_it 1[F <= exp(mean_t log u_it) <= C] (the geometric mean over sequence i's
    own tokens; the surviving sequences keep their token weights, as OpenRLHF)."""
    weights = _bounded_exp(log_u)
    seq_weight = torch.exp(masked_mean(log_u, mask, dim=-1)).unsqueeze(-1)
    return torch.where((seq_weight >= floor) & (seq_weight <= cap), weights, torch.zeros_like(weights))


def is_correction_weights(old_log_probs: Tensor, sampler_log_probs: Tensor, mask: Tensor, clip: ClipConfig) -> Tensor:
    """The ``clip.tis_mode`` weights of u_t = exp(log pi_old - log pi_sampler) in [tis_floor, tis_cap], 0 on
    padding; no gradient. Corrects for the sampler (vLLM) and the trainer disagreeing."""
    log_u = (old_log_probs.float() - sampler_log_probs.float()).detach()
    weights = get_is_correction(clip.tis_mode)(log_u, mask, clip.tis_floor, clip.tis_cap)
    return masked_fill_padding(weights, mask)


# ----------------------------------------------------------------------------- the loss


def policy_log_ratio(log_probs: Tensor, base_log_probs: Tensor, pre_clip: PreClipConfig) -> Tensor:
    """d_t = log pi_theta - log pi_base, clamped to [log_ratio_min, log_ratio_max] when Pre-CLIP is on."""
    log_ratio = log_probs.float() - base_log_probs.float()
    if not pre_clip.enable:
        return log_ratio
    return log_ratio.clamp(pre_clip.log_ratio_min, pre_clip.log_ratio_max)


def loss_agg_mode_of(algo_cfg: AlgoConfig) -> str:
    """The aggregation the loss uses: the surrogate's own (GSPO: seq-mean-token-mean), else algo.loss_agg_mode."""
    return get_policy_loss(algo_cfg.policy_loss_type).loss_agg_mode or algo_cfg.loss_agg_mode


def _check_inputs(named: dict[str, Tensor | None], mask: Tensor) -> None:
    check_mask(mask)
    for name, tensor in named.items():
        if tensor is not None:
            check_token_tensor(name, tensor, mask)


def _check_loss_terms(algo_cfg: AlgoConfig, kl_coef: float, ref_log_probs: Tensor | None, entropy: Tensor | None):
    """The call's own arguments against the config (the config itself is validated when it is built)."""
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0; got {kl_coef!r}")
    if kl_coef > 0 and not algo_cfg.kl.use_kl_loss:
        raise ValueError(
            f"kl_coef={kl_coef} was passed but algo.kl.use_kl_loss=False: the KL is then a reward penalty "
            "(compute_advantages), so pass kl_coef=0 here"
        )
    if kl_coef > 0 and ref_log_probs is None:
        raise ValueError("algo.kl.use_kl_loss=True with kl_coef > 0 needs ref_log_probs (the reference model's)")
    if algo_cfg.entropy_coef > 0 and entropy is None:
        raise ValueError(f"algo.entropy_coef={algo_cfg.entropy_coef} > 0 needs the per-token entropy tensor")


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
    reported, and used as a bonus when ``algo.entropy_coef`` > 0. The importance correction applies when
    ``sampler_log_probs`` is given and ``algo.clip.tis_cap`` > 0. ``global_token_count``,
    ``global_seq_count`` and ``max_response_len`` go to :func:`aggregate_loss` for the returned loss (the
    micro-batch's share of the global mini-batch's loss); the metrics (plain floats: loss, pg_loss, clip_frac,
    approx_kl, ...) are this micro-batch's own means, so averaging them over micro-batches gives sensible numbers.
    """
    tensors = {"log_probs": log_probs, "old_log_probs": old_log_probs, "advantages": advantages}
    tensors |= {"ref_log_probs": ref_log_probs, "sampler_log_probs": sampler_log_probs, "entropy": entropy}
    _check_inputs(tensors, response_mask)
    _check_loss_terms(algo_cfg, kl_coef, ref_log_probs, entropy)
    policy_loss, clip = get_policy_loss(algo_cfg.policy_loss_type), algo_cfg.clip
    corrected = sampler_log_probs is not None and clip.tis_cap > 0
    base_log_probs = sampler_log_probs if corrected and policy_loss.ratio_vs_sampler else old_log_probs

    # padding is set to neutral values first, so whatever it holds (inf, NaN) reaches neither loss nor gradient
    log_ratio = masked_fill_padding(policy_log_ratio(log_probs, base_log_probs, algo_cfg.pre_clip), response_mask)
    advantages = masked_fill_padding(advantages.float(), response_mask)
    surrogate = policy_loss.fn(log_ratio, advantages, response_mask, clip)
    weights = None
    if corrected and not policy_loss.ratio_vs_sampler:
        weights = is_correction_weights(old_log_probs, sampler_log_probs, response_mask, clip)
    token_loss = surrogate.token_loss if weights is None else surrogate.token_loss * weights
    kl_tokens = None
    if ref_log_probs is not None:
        kl_cfg = algo_cfg.kl
        with torch.set_grad_enabled(kl_coef > 0 and torch.is_grad_enabled()):
            kl_tokens = kl_estimate(log_probs, ref_log_probs, kl_cfg.estimator, kl_cfg.log_ratio_clamp, response_mask)

    agg_mode = loss_agg_mode_of(algo_cfg)

    def agg(values: Tensor) -> Tensor:  # this micro-batch's share of the global mini-batch's loss
        return aggregate_loss(
            values,
            response_mask,
            agg_mode,
            global_token_count=global_token_count,
            global_seq_count=global_seq_count,
            max_response_len=max_response_len,
        )

    loss = agg(token_loss)
    if kl_tokens is not None and kl_coef > 0:
        loss = loss + kl_coef * agg(kl_tokens)
    if entropy is not None and algo_cfg.entropy_coef > 0:
        loss = loss - algo_cfg.entropy_coef * agg(entropy.float())
    parts = LossParts(token_loss, surrogate, weights, kl_tokens, entropy, log_probs, old_log_probs, base_log_probs)
    metrics = loss_metrics(parts, sampler_log_probs, response_mask, algo_cfg, agg_mode, kl_coef, max_response_len)
    return loss, metrics


# ----------------------------------------------------------------------------- metrics


class LossParts(NamedTuple):
    """The pieces of one micro-batch's loss that its metrics are computed from."""

    token_loss: Tensor
    surrogate: Surrogate
    weights: Tensor | None
    kl_tokens: Tensor | None
    entropy: Tensor | None
    log_probs: Tensor
    old_log_probs: Tensor
    base_log_probs: Tensor


@torch.no_grad()
def loss_metrics(
    parts: LossParts,
    sampler_log_probs: Tensor | None,
    mask: Tensor,
    algo_cfg: AlgoConfig,
    agg_mode: str,
    kl_coef: float,
    max_response_len: int | None,
) -> dict[str, float]:
    """All metrics of one micro-batch's loss in one no-grad pass, read back to the host at once.

    They are the micro-batch's own means (local aggregation, not its share of the global loss). ``loss`` is
    pg_loss + beta kl_loss - alpha entropy-term; ``pre_clip_frac`` is the fraction of tokens whose log-ratio
    Pre-CLIP clamped, against the base log-probs the ratio actually used (pi_old, or GSPO's sampler).
    """
    clip, kl_cfg = algo_cfg.clip, algo_cfg.kl

    def mean(values: Tensor) -> Tensor:
        return masked_mean(values.float(), mask)

    def local_agg(values: Tensor) -> Tensor:
        return aggregate_loss(values.detach().float(), mask, agg_mode, max_response_len=max_response_len)

    def masked_max(values: Tensor) -> Tensor:
        return masked_fill_padding(values, mask).max() if values.numel() else torch.zeros((), device=values.device)

    out: dict[str, Tensor] = {}
    if sampler_log_probs is not None:
        log_u = parts.old_log_probs.float() - sampler_log_probs.float()
        out["sampler_abs_log_prob_diff"] = mean(log_u.abs())
        u = torch.exp(log_u.clamp(max=kl_cfg.log_ratio_clamp))
        out["sampler_ratio_std"] = mean((u - mean(u)) ** 2).sqrt()
        out["sampler_ratio_max"] = masked_max(u)
    if parts.weights is not None:
        out["tis_weight_mean"] = mean(parts.weights)
        out["tis_capped_frac"] = mean(parts.weights >= clip.tis_cap)
        if clip.tis_mode != "tis":
            out["tis_masked_frac"] = mean(parts.weights == 0)
    out["pg_loss"] = local_agg(parts.token_loss)
    if parts.kl_tokens is not None:
        out["kl"] = kl_metric(parts.kl_tokens, mask)  # the driver's kl/mean, same definition
        if kl_coef > 0:
            out["kl_loss"] = local_agg(parts.kl_tokens)
    if parts.entropy is not None:
        out["entropy"] = mean(parts.entropy)
        if algo_cfg.entropy_coef > 0:
            out["entropy_term"] = local_agg(parts.entropy)
    active, ratio = parts.surrogate.active, parts.surrogate.ratio
    out["clip_frac"] = mean(active["clip_low"] | active["clip_high"])
    out["clip_frac_low"] = mean(active["clip_low"])
    out["clip_frac_high"] = mean(active["clip_high"])
    out["ratio_mean"] = mean(ratio)
    out["ratio_max"] = masked_max(ratio)
    raw_log_ratio = masked_fill_padding(parts.log_probs.float() - parts.old_log_probs.float(), mask)
    raw_log_ratio = raw_log_ratio.clamp(-kl_cfg.log_ratio_clamp, kl_cfg.log_ratio_clamp)
    out["approx_kl"] = mean(torch.expm1(raw_log_ratio) - raw_log_ratio)
    if "dual_clip" in active:
        out["dual_clip_frac"] = mean(active["dual_clip"])
    if algo_cfg.pre_clip.enable:
        token_log_ratio = parts.log_probs.float() - parts.base_log_probs.float()
        pre_clipped = policy_log_ratio(parts.log_probs, parts.base_log_probs, algo_cfg.pre_clip) != token_log_ratio
        out["pre_clip_frac"] = mean(pre_clipped)

    values = torch.stack([v.reshape(()).double() for v in out.values()]).tolist()  # one device-to-host copy
    metrics = dict(zip(out, values, strict=True))
    entropy_term = metrics.pop("entropy_term", 0.0)
    metrics["loss"] = metrics["pg_loss"] + kl_coef * metrics.get("kl_loss", 0.0) - algo_cfg.entropy_coef * entropy_term
    return metrics
