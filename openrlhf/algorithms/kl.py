"""KL between the policy and the reference model: per-token estimators and the coefficient controllers.

For a token sampled from the policy pi, with the log-ratio r = log pi(x) - log pi_ref(x) clamped to
[-c, c] (c = ``algo.kl.log_ratio_clamp``) so one bad token cannot produce inf (Schulman, "Approximating
KL divergence", 2020):

  k1 = r                       unbiased, can be negative, high variance
  k2 = r^2 / 2                 biased, always >= 0, low variance
  k3 = exp(-r) - 1 + r         unbiased, always >= 0 (GRPO's choice for the KL loss)

The KL is used either as a reward penalty (``use_kl_loss=False``: compute_advantages subtracts
beta * KL_t from the token rewards) or as a loss term (``use_kl_loss=True``: compute_policy_loss adds
beta * agg(KL_t)). beta comes from a controller: fixed, or adaptive (Ziegler et al., 2019).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from openrlhf.algorithms.masked import check_mask, check_token_tensor, masked_fill_padding
from openrlhf.config import KLConfig


def kl_k1(log_ratio: Tensor) -> Tensor:
    """k1 = r, with r = log pi - log pi_ref."""
    return log_ratio


def kl_k2(log_ratio: Tensor) -> Tensor:
    """k2 = r^2 / 2."""
    return 0.5 * log_ratio.square()


def kl_k3(log_ratio: Tensor) -> Tensor:
    """k3 = exp(-r) - 1 + r  (= pi_ref/pi - 1 - log(pi_ref/pi))."""
    return torch.exp(-log_ratio) - 1.0 + log_ratio


KL_ESTIMATORS: dict[str, Callable[[Tensor], Tensor]] = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def kl_estimate(
    log_probs: Tensor,
    ref_log_probs: Tensor,
    estimator: str = "k3",
    log_ratio_clamp: float = 10.0,
    mask: Tensor | None = None,
) -> Tensor:
    """Per-token KL estimate k(clamp(log pi - log pi_ref, -c, c)) of shape [B, T]; 0 on padding if mask given."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"algo.kl.estimator={estimator!r} is not a KL estimator (allowed: {', '.join(KL_ESTIMATORS)})")
    if not log_ratio_clamp > 0:
        raise ValueError(f"algo.kl.log_ratio_clamp must be > 0; got {log_ratio_clamp!r}")
    check_token_tensor("ref_log_probs", ref_log_probs, log_probs, "log_probs")
    log_ratio = log_probs.float() - ref_log_probs.float()
    if mask is not None:
        check_mask(mask)
        check_token_tensor("mask", mask, log_probs, "log_probs")
        log_ratio = masked_fill_padding(log_ratio, mask)  # padding -> 0, so k(0) = 0 there, gradient too
    return KL_ESTIMATORS[estimator](log_ratio.clamp(-log_ratio_clamp, log_ratio_clamp))


def kl_penalty_per_token(log_probs: Tensor, ref_log_probs: Tensor, mask: Tensor, kl_cfg: KLConfig) -> Tensor:
    """Per-token KL_t [B, T] with the estimator and clamp from ``algo.kl``; 0 on padding.

    Unscaled: as a reward penalty pass ``beta * KL_t`` (beta = the KL controller's value) to
    compute_advantages; its masked mean is the KL the adaptive controller is updated with.
    """
    return kl_estimate(log_probs, ref_log_probs, kl_cfg.estimator, kl_cfg.log_ratio_clamp, mask)


def kl_metric(kl_tokens: Tensor, mask: Tensor) -> Tensor:
    """The KL logged as ``kl/mean`` and fed to the adaptive controller (a 0-d tensor): per-sequence token
    means, averaged over sequences (OpenRLHF's), whichever path computed the per-token KL_t (the driver's
    reward penalty or the policy's KL loss):

        KL = (1/B) sum_i [ sum_t m_it KL_it / max(1, sum_t m_it) ]
    """
    mask = mask.to(torch.float32)
    per_sequence = (kl_tokens.detach().float() * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)
    return per_sequence.mean() if per_sequence.numel() else per_sequence.new_zeros(())


class FixedKLController:
    """beta_t = beta_0 for every step."""

    def __init__(self, kl_coef: float) -> None:
        if kl_coef < 0:
            raise ValueError(f"algo.kl.init_kl_coef must be >= 0; got {kl_coef!r}")
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """No change: the coefficient is fixed."""

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """Proportional controller that steers the measured KL towards a target (Ziegler et al., 2019):

    e_t = clip(KL_t / KL_target - 1, -0.2, 0.2);   beta_{t+1} = beta_t * (1 + e_t * n_steps / horizon)
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        if init_kl_coef < 0:
            raise ValueError(f"algo.kl.init_kl_coef must be >= 0; got {init_kl_coef!r}")
        if not target > 0:
            raise ValueError(f"algo.kl.target must be > 0; got {target!r}")
        if horizon < 1:
            raise ValueError(f"algo.kl.horizon must be >= 1; got {horizon!r}")
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n_steps / horizon)."""
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


def make_kl_controller(kl_cfg: KLConfig) -> FixedKLController | AdaptiveKLController:
    """The controller ``algo.kl`` asks for: adaptive when ``adaptive`` is set, else fixed at init_kl_coef."""
    if kl_cfg.adaptive:
        return AdaptiveKLController(kl_cfg.init_kl_coef, kl_cfg.target, kl_cfg.horizon)
    return FixedKLController(kl_cfg.init_kl_coef)
