"""RL algorithms as pure torch functions on [B, T] tensors with masks: no Ray, no DeepSpeed, no I/O.

What the trainer calls:
  resolve_algo_preset(cfg.algo)                          once at start: the knobs algo.name implies
  make_kl_controller(cfg.algo.kl)                        once at start; .value is beta, .update(kl, n) per step
  dynamic_filter_groups(scores, n, cfg.algo.dynamic_filter) -> (keep [B], metrics)   before advantages
  kl_penalty_per_token(old_log_probs, ref_log_probs, mask, cfg.algo.kl) -> KL_t [B, T]
  stop_properly_penalty(rewards, truncated, c) -> (rewards, metrics)   reward.stop_properly_penalty_coef
  compute_advantages(rewards, mask, cfg.algo, n, kl_per_token=beta * KL_t) -> (advantages, returns, metrics)
  compute_policy_loss(log_probs, old_log_probs, advantages, mask, cfg.algo, ...) -> (loss, metrics)  per micro-batch
    (its surrogates and importance corrections are registries: register_policy_loss, register_is_correction)
Per-token entropy comes from openrlhf.models.logprobs.entropy_from_logits (the log-prob code's chunked pass).
docs/algorithms.md has every formula.
"""

from openrlhf.algorithms.advantages import ADVANTAGE_ESTIMATORS, BATCH_WHITENED, compute_advantages
from openrlhf.algorithms.aggregation import LOSS_AGGREGATORS, aggregate_loss
from openrlhf.algorithms.filters import dynamic_filter_groups, filter_advantages
from openrlhf.algorithms.groups import check_group_layout, group_view
from openrlhf.algorithms.kl import (
    KL_ESTIMATORS,
    AdaptiveKLController,
    FixedKLController,
    kl_estimate,
    kl_metric,
    kl_penalty_per_token,
    make_kl_controller,
)
from openrlhf.algorithms.length_penalty import stop_properly_penalty
from openrlhf.algorithms.masked import masked_mean, masked_sum, masked_whiten
from openrlhf.algorithms.policy_loss import (
    IS_CORRECTIONS,
    POLICY_LOSSES,
    compute_policy_loss,
    get_is_correction,
    get_policy_loss,
    register_is_correction,
    register_policy_loss,
)
from openrlhf.algorithms.presets import ALGO_PRESETS, preset_overrides, resolve_algo_preset

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "ALGO_PRESETS",
    "BATCH_WHITENED",
    "IS_CORRECTIONS",
    "KL_ESTIMATORS",
    "LOSS_AGGREGATORS",
    "POLICY_LOSSES",
    "AdaptiveKLController",
    "FixedKLController",
    "aggregate_loss",
    "check_group_layout",
    "compute_advantages",
    "compute_policy_loss",
    "dynamic_filter_groups",
    "filter_advantages",
    "get_is_correction",
    "get_policy_loss",
    "group_view",
    "kl_estimate",
    "kl_metric",
    "kl_penalty_per_token",
    "make_kl_controller",
    "masked_mean",
    "masked_sum",
    "masked_whiten",
    "register_is_correction",
    "register_policy_loss",
    "stop_properly_penalty",
    "preset_overrides",
    "resolve_algo_preset",
]
