"""Cutting a worker's experience into micro-batches: a fixed number of rows, or a token budget.

Fixed (the default): consecutive rows, ``size`` at a time. Token budget (``--train.dynamic_batch_enable``
with ``--train.max_tokens_per_gpu`` / ``--rollout.max_tokens_per_gpu``, OpenRLHF's flags): rows are sorted
by length and taken greedily while a micro-batch's cost stays within the budget; the cost is
``rows x width`` padded, or the sum of real tokens when packed (``--ds.packing_samples``). A row longer than
the budget goes alone. Either way every micro-batch is trimmed to its own rows' width (the columns where no
row has a token are dropped), so a batch of short answers does not pay for the longest answer of the step.

The gradient is unchanged by any of this: each micro-batch loss is its share of the global mini-batch's
loss (normalised by the global token and sequence counts, openrlhf/algorithms/aggregation.py) and the
shares are accumulated, and a sum does not depend on how its terms are grouped.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from openrlhf.workers.experience import Experience


@dataclass
class MicroBatch:
    """Rows ``rows`` of the experience, trimmed: response columns ``[0, response_width)`` of the full [B, R]."""

    rows: torch.Tensor
    exp: Experience

    @property
    def response_width(self) -> int:
        return self.exp.num_response_tokens


def trim_padding(exp: Experience) -> Experience:
    """Drop the leading columns where no row has a prompt token and the trailing response columns where
    no row has a response token (at least one response column stays). Per-token fields are cut alike."""
    response_width = exp.num_response_tokens
    prompt_width = exp.sequences.shape[1] - response_width
    prompt_used = exp.attention_mask[:, :prompt_width].any(dim=0).nonzero()
    first = int(prompt_used[0]) if len(prompt_used) else prompt_width
    response_used = exp.response_mask.any(dim=0).nonzero()
    keep_r = max(1, int(response_used[-1]) + 1 if len(response_used) else 1)
    if first == 0 and keep_r == response_width:
        return exp
    end = prompt_width + keep_r
    values = {}
    for f in fields(exp):
        value = getattr(exp, f.name)
        if f.name in ("sequences", "attention_mask"):
            value = value[:, first:end]
        elif f.name != "multimodal" and value is not None:
            value = value[:, :keep_r]
        values[f.name] = value
    return Experience(**values)


def row_lengths(exp: Experience) -> torch.Tensor:
    """Real tokens (prompt + response) of each row."""
    return exp.attention_mask.sum(dim=1)


def fixed_size_micro_batches(exp: Experience, size: int) -> list[MicroBatch]:
    """Consecutive rows, ``size`` at a time, each micro-batch trimmed."""
    out = []
    for start in range(0, exp.batch_size, size):
        rows = torch.arange(start, min(start + size, exp.batch_size))
        out.append(MicroBatch(rows, trim_padding(exp.select(rows))))
    return out


def token_budget_groups(
    lengths: list[int], prompt_lengths: list[int], max_tokens: int, packed: bool
) -> list[list[int]]:
    """Row indices of each micro-batch: rows sorted by length (longest first), added greedily while the
    micro-batch's cost fits ``max_tokens``. Cost: sum of lengths when ``packed``; padded, it is
    ``rows x (max prompt + max response)``, the width of the trimmed micro-batch."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups: list[list[int]] = []
    current: list[int] = []
    total = max_prompt = max_response = 0
    for i in order:
        prompt, response = prompt_lengths[i], lengths[i] - prompt_lengths[i]
        if packed:
            cost = total + lengths[i]
        else:
            cost = (len(current) + 1) * (max(max_prompt, prompt) + max(max_response, response))
        if current and cost > max_tokens:
            groups.append(current)
            current, total, max_prompt, max_response = [], 0, 0, 0
        current.append(i)
        total += lengths[i]
        max_prompt, max_response = max(max_prompt, prompt), max(max_response, response)
    if current:
        groups.append(current)
    return [sorted(g) for g in groups]


def token_budget_micro_batches(exp: Experience, max_tokens: int, *, packed: bool) -> list[MicroBatch]:
    """Micro-batches of at most ``max_tokens`` tokens each (see :func:`token_budget_groups`), trimmed."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens_per_gpu must be >= 1; got {max_tokens}")
    lengths = row_lengths(exp).tolist()
    prompt_width = exp.sequences.shape[1] - exp.num_response_tokens
    prompt_lengths = exp.attention_mask[:, :prompt_width].sum(dim=1).tolist()
    out = []
    for group in token_budget_groups(lengths, prompt_lengths, max_tokens, packed):
        rows = torch.tensor(group, dtype=torch.long)
        out.append(MicroBatch(rows, trim_padding(exp.select(rows))))
    return out


def plan_micro_batches(exp: Experience, size: int, max_tokens: int, *, dynamic: bool, packed: bool) -> list[MicroBatch]:
    """The micro-batches one worker runs: by token budget when ``dynamic``, else ``size`` rows at a time."""
    if dynamic:
        return token_budget_micro_batches(exp, max_tokens, packed=packed)
    return fixed_size_micro_batches(exp, size)


def scatter_rows(pieces: list[tuple[MicroBatch, torch.Tensor]], batch_size: int, width: int) -> torch.Tensor:
    """Put per-micro-batch [b, r] results back at their rows of a zero [B, R] tensor (r <= R)."""
    out = torch.zeros(batch_size, width, dtype=torch.float32)
    for mb, values in pieces:
        out[mb.rows, : values.shape[1]] = values.float().cpu()
    return out
