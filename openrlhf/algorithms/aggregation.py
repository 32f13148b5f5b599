"""Loss aggregation: how a [B, T] matrix of per-token losses becomes one scalar (``algo.loss_agg_mode``).

With L_it the token loss, m_it the response mask, |o_i| = sum_t m_it the length of response i, and
S the number of sequences (the rows B of the micro-batch, or ``global_seq_count``):

  token-mean               sum_it m_it L_it / N_tok                    (N_tok: global_token_count, else sum m)
  seq-mean-token-mean      (1/S) sum_i [ sum_t m_it L_it / |o_i| ]     (GRPO paper)
  seq-mean-token-sum       (1/S) sum_i sum_t m_it L_it
  seq-mean-token-sum-norm  (1/S) sum_i sum_t m_it L_it / L_max         (Dr.GRPO; L_max a constant)

With data parallelism or gradient accumulation, pass the counts of the *global* batch
(``global_token_count`` / ``global_seq_count``): the returned value is then this micro-batch's share of
the global loss, and the shares are summed (not averaged) over micro-batches and ranks. Without them the
value is this micro-batch's own mean (a response with no valid token counts as a sequence with loss 0).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from openrlhf.algorithms.masked import as_float_mask, check_mask, check_token_tensor, masked_sum


def _seq_count(mask: Tensor, global_seq_count: int | float | Tensor | None) -> Tensor:
    if global_seq_count is not None:
        return _positive_count("global_seq_count", global_seq_count, mask)
    return torch.tensor(float(max(mask.shape[0], 1)), device=mask.device)


def _positive_count(name: str, value: int | float | Tensor, like: Tensor) -> Tensor:
    count = torch.as_tensor(value, dtype=torch.float32, device=like.device)
    if count.numel() != 1 or not bool(count > 0):
        raise ValueError(f"{name} must be a positive count; got {value!r}")
    return count.reshape(())


def token_mean(
    loss_mat: Tensor,
    mask: Tensor,
    *,
    global_token_count: int | float | Tensor | None = None,
    global_seq_count: int | float | Tensor | None = None,
    max_response_len: int | None = None,
) -> Tensor:
    """sum_it m_it L_it / N_tok, N_tok = global_token_count if given, else sum_it m_it (at least 1)."""
    if global_token_count is not None:
        count = _positive_count("global_token_count", global_token_count, loss_mat)
    else:
        count = as_float_mask(mask).sum().clamp_min(1.0)
    return masked_sum(loss_mat, mask) / count


def seq_mean_token_mean(
    loss_mat: Tensor,
    mask: Tensor,
    *,
    global_token_count: int | float | Tensor | None = None,
    global_seq_count: int | float | Tensor | None = None,
    max_response_len: int | None = None,
) -> Tensor:
    """(1/S) sum_i [ sum_t m_it L_it / max(|o_i|, 1) ]."""
    lengths = as_float_mask(mask).sum(dim=-1)
    per_seq = masked_sum(loss_mat, mask, dim=-1) / lengths.clamp_min(1.0)
    return per_seq.sum() / _seq_count(mask, global_seq_count)


def seq_mean_token_sum(
    loss_mat: Tensor,
    mask: Tensor,
    *,
    global_token_count: int | float | Tensor | None = None,
    global_seq_count: int | float | Tensor | None = None,
    max_response_len: int | None = None,
) -> Tensor:
    """(1/S) sum_i sum_t m_it L_it."""
    return masked_sum(loss_mat, mask) / _seq_count(mask, global_seq_count)


def seq_mean_token_sum_norm(
    loss_mat: Tensor,
    mask: Tensor,
    *,
    global_token_count: int | float | Tensor | None = None,
    global_seq_count: int | float | Tensor | None = None,
    max_response_len: int | None = None,
) -> Tensor:
    """(1/S) sum_i sum_t m_it L_it / L_max (Dr.GRPO), L_max = max_response_len, else the mask's width T.

    Pass ``max_response_len=rollout.max_new_tokens`` so the normaliser is the same constant in every
    micro-batch (the padded width T changes from batch to batch).
    """
    if max_response_len is None:
        max_len = float(mask.shape[-1])
    elif isinstance(max_response_len, bool) or not isinstance(max_response_len, int) or max_response_len < 1:
        raise ValueError(f"max_response_len must be a positive int (rollout.max_new_tokens); got {max_response_len!r}")
    else:
        max_len = float(max_response_len)
    return masked_sum(loss_mat, mask) / _seq_count(mask, global_seq_count) / max(max_len, 1.0)


LOSS_AGGREGATORS: dict[str, Callable[..., Tensor]] = {
    "token-mean": token_mean,
    "seq-mean-token-mean": seq_mean_token_mean,
    "seq-mean-token-sum": seq_mean_token_sum,
    "seq-mean-token-sum-norm": seq_mean_token_sum_norm,
}


def aggregate_loss(
    loss_mat: Tensor,
    mask: Tensor,
    mode: str,
    *,
    global_token_count: int | float | Tensor | None = None,
    global_seq_count: int | float | Tensor | None = None,
    max_response_len: int | None = None,
) -> Tensor:
    """Reduce per-token losses [B, T] to a scalar with the named ``algo.loss_agg_mode`` (formulas above)."""
    check_mask(mask)
    check_token_tensor("loss_mat", loss_mat, mask)
    try:
        aggregator = LOSS_AGGREGATORS[mode]
    except KeyError:
        raise ValueError(
            f"algo.loss_agg_mode={mode!r} is not a loss aggregation mode (allowed: {', '.join(LOSS_AGGREGATORS)})"
        ) from None
    return aggregator(
        loss_mat,
        mask,
        global_token_count=global_token_count,
        global_seq_count=global_seq_count,
        max_response_len=max_response_len,
    )
