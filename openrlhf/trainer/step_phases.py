"""The named phases of one training step on a generated, scored batch (the driver's ``_consume``).

    shape_rewards      stop-properly penalty, dynamic filter, whole groups per rank, reward/length metrics
    fill_log_probs     old (unless the training forward's own) and reference log-probs; the KL penalty
    step_advantages    advantages and returns (openrlhf.algorithms.compute_advantages) with the KL coefficient
    finish_metrics     timings and throughput

Each takes tensors, the config and (for log-probs) worker groups, so unit tests call them without Ray
(in-driver worker groups answer as actors do).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from openrlhf.config import Config
from openrlhf.trainer.experience_maker import Rollout
from openrlhf.workers.experience import Experience


def nanmean(values) -> float:
    """The mean of the values that are not NaN (a worker or component that reported none); NaN if none are."""
    values = [float(v) for v in values if v == v]
    return sum(values) / len(values) if values else float("nan")


@dataclass
class ShapedRewards:
    """The batch's rewards after shaping, which rows train (``keep``) and what was logged on the way."""

    rewards: torch.Tensor
    keep: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    generated_tokens: float = 0.0


def shape_rewards(rollout: Rollout, exp: Experience, cfg: Config, world: int) -> ShapedRewards:
    """Stop-properly penalty on truncated responses, the dynamic filter (groups without signal dropped), kept
    groups trimmed to split evenly over ``world`` ranks; reward, component and response-length metrics."""
    from openrlhf.algorithms import dynamic_filter_groups, stop_properly_penalty

    n = cfg.rollout.n_samples_per_prompt
    metrics: dict[str, float] = {}
    truncated = torch.tensor([o.finish_reason == "length" for o in rollout.outputs])
    metrics["response_length/truncated_frac"] = float(truncated.float().mean())
    if cfg.reward.stop_properly_penalty_coef is not None:
        rollout.rewards, penalty_stats = stop_properly_penalty(
            rollout.rewards, truncated, cfg.reward.stop_properly_penalty_coef
        )
        metrics.update(penalty_stats)
    rewards = rollout.rewards
    keep = torch.ones(exp.batch_size, dtype=torch.bool)
    if cfg.algo.dynamic_filter.enable:
        keep, filter_stats = dynamic_filter_groups(rollout.scores, n, cfg.algo.dynamic_filter)
        metrics.update(filter_stats)
    keep = trim_to_whole_groups(keep, n, world)
    metrics["reward/mean"] = float(rewards.mean())
    metrics["reward/std"] = float(rewards.std()) if rewards.numel() > 1 else 0.0
    for name, values in rollout.components.items():
        metrics[f"reward/{name}"] = nanmean(values)
    for name, value in rollout.extra_logs.items():
        if name not in rollout.components:  # batch means of components are logged above already
            metrics[f"reward_log/{name}"] = float(value)
    lengths = exp.response_mask.sum(dim=1)
    metrics["response_length/mean"] = float(lengths.mean())
    metrics["response_length/max"] = float(lengths.max())
    return ShapedRewards(rewards, keep, metrics, float(lengths.sum()))


def trim_to_whole_groups(keep: torch.Tensor, n: int, world: int) -> torch.Tensor:
    """Drop kept groups from the end until the kept rows split evenly over the data-parallel ranks."""
    keep = keep.clone()
    groups = keep.view(-1, n).all(dim=1)
    kept = groups.nonzero().flatten().tolist()
    while kept and (len(kept) * n) % world:
        groups[kept.pop()] = False
    return groups.repeat_interleave(n)


def old_log_probs_from_training(cfg: Config, rows: int, use_reference: bool) -> bool:
    """Whether the old log-probs may be the training forward's own, detached, instead of a separate forward.

    With one epoch and one optimizer step over all ``rows`` the update is exactly on-policy: the weights that
    score log pi_old are the weights the training forward runs with, so ratio = exp(log pi - sg(log pi)) = 1
    in value with the gradient of log pi (as TRL's GRPO does with num_iterations=1). A KL penalty in the
    reward (``algo.kl.use_kl_loss`` false) needs log pi_old before the advantages, so it keeps the forward;
    so does ``train.recompute_old_logprobs``.
    """
    one_step = cfg.train.train_batch_size == 0 or cfg.train.train_batch_size >= rows
    kl_needs_old = use_reference and not cfg.algo.kl.use_kl_loss
    return cfg.train.max_epochs == 1 and one_step and not kl_needs_old and not cfg.train.recompute_old_logprobs


def group_log_probs(group, exp: Experience) -> torch.Tensor:
    """Log-probs of ``exp``'s response tokens from every rank of a worker group, each scoring its shard."""
    shards = exp.shard(len(group))
    return torch.cat(group.call_per_rank("compute_log_probs", [(s,) for s in shards]), dim=0)


def fill_log_probs(exp: Experience, policy, reference, cfg: Config) -> tuple[torch.Tensor | None, dict[str, float]]:
    """Set ``exp.old_log_probs`` (unless the training forward's own serve: :func:`old_log_probs_from_training`)
    and ``exp.ref_log_probs``; returns the per-token KL penalty KL_t when it enters the reward (else None)."""
    from openrlhf.algorithms import kl_metric, kl_penalty_per_token

    metrics: dict[str, float] = {}
    on_policy = old_log_probs_from_training(cfg, exp.batch_size, reference is not None)
    metrics["train/old_logprobs_from_training"] = float(on_policy)
    if not on_policy:
        exp.old_log_probs = group_log_probs(policy, exp)
    if reference is None:
        return None, metrics
    exp.ref_log_probs = group_log_probs(reference, exp)
    if on_policy:  # the policy reports the KL (the same :func:`kl_metric`) as it trains
        return None, metrics
    kl_per_token = kl_penalty_per_token(exp.old_log_probs, exp.ref_log_probs, exp.response_mask, cfg.algo.kl)
    metrics["kl/mean"] = float(kl_metric(kl_per_token, exp.response_mask))
    return kl_per_token, metrics


def step_advantages(
    exp: Experience, rewards: torch.Tensor, cfg: Config, kl_per_token: torch.Tensor | None, kl_coef: float
) -> dict[str, float]:
    """``exp.advantages`` and ``exp.returns`` from the rewards; beta * KL_t enters the token rewards unless the
    KL is a loss term (``algo.kl.use_kl_loss``)."""
    from openrlhf.algorithms import compute_advantages

    penalty = None if cfg.algo.kl.use_kl_loss or kl_per_token is None else kl_per_token * kl_coef
    exp.advantages, exp.returns, metrics = compute_advantages(
        rewards, exp.response_mask, cfg.algo, cfg.rollout.n_samples_per_prompt, kl_per_token=penalty
    )
    return metrics


def finish_metrics(metrics: dict[str, float], timings: dict[str, float], generated_tokens: float) -> dict[str, float]:
    """Add ``timing/*`` and the throughput of the step to ``metrics``."""
    for key, value in timings.items():
        metrics[f"timing/{key}"] = value
    if timings.get("generation"):
        metrics["throughput/generated_tokens_per_s"] = generated_tokens / timings["generation"]
    metrics["throughput/tokens_per_s"] = generated_tokens / max(timings["step"], 1e-9)
    return metrics
