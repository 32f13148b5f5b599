"""Padding-free forward (``--ds.packing_samples``): the rows of a micro-batch as one packed sequence.

Each row's real tokens (``[left-padded prompt | right-padded response]`` rows hold them contiguously) are
concatenated into one ``[1, T]`` row with position ids restarting at 0 for every sample and no attention
mask. transformers then keeps attention inside each sample: flash-attention runs variable-length kernels
from the position ids, SDPA and eager build a block-diagonal causal mask (transformers' masking_utils,
``find_packed_sequence_indices``). Only the positions that predict a response token go through the LM
head (``logits_to_keep`` as an index tensor).

Cost: no compute on padding; with SDPA the mask is ``T x T``, so on the CPU packing pays only when rows
are very uneven (docs/benchmarks.md); with flash-attention it is the usual GPU choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from openrlhf.models.logprobs import entropy_from_logits, log_probs_from_logits


@dataclass
class PackedRows:
    input_ids: torch.Tensor  # [1, T]
    position_ids: torch.Tensor  # [1, T]
    predict_at: torch.Tensor  # [K] packed positions whose next token is a response token
    rows: torch.Tensor  # [K] the row of each kept position
    cols: torch.Tensor  # [K] its response column


def pack_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor, num_response_tokens: int) -> PackedRows:
    """Concatenate the real tokens of ``[B, L]`` rows whose last ``num_response_tokens`` columns are the
    (right-padded) response; record where each response token's prediction sits in the pack."""
    width = input_ids.shape[1]
    prompt_width = width - num_response_tokens
    ids, positions, predict_at, rows, cols = [], [], [], [], []
    offset = 0
    for r in range(input_ids.shape[0]):
        real = attention_mask[r].nonzero().flatten()
        if len(real) == 0:
            continue
        start, end = int(real[0]), int(real[-1]) + 1
        if end - start != len(real):
            raise ValueError(f"row {r}: its tokens are not contiguous (a hole in the attention mask)")
        ids.append(input_ids[r, start:end])
        positions.append(torch.arange(end - start, device=input_ids.device))
        first_response = max(prompt_width, start + 1)  # a token is predicted by the one before it
        if end > first_response:
            cols_r = torch.arange(first_response, end, device=input_ids.device)
            predict_at.append(offset + (cols_r - 1 - start))
            rows.append(torch.full_like(cols_r, r))
            cols.append(cols_r - prompt_width)
        offset += end - start

    def cat(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=input_ids.device)

    return PackedRows(cat(ids).unsqueeze(0), cat(positions).unsqueeze(0), cat(predict_at), cat(rows), cat(cols))


def compute_packed_token_log_probs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    num_response_tokens: int,
    temperature: float = 1.0,
    return_entropy: bool = False,
    entropy_grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(y_t | y_<t) of the last ``num_response_tokens`` columns of ``[B, L]`` rows, from one packed
    forward; ``[B, R]`` with 0 where a row has no response token (as the padded path, mask them)."""
    packed = pack_rows(input_ids, attention_mask, num_response_tokens)
    shape = (input_ids.shape[0], num_response_tokens)
    log_probs = torch.zeros(shape, dtype=torch.float32, device=input_ids.device)
    entropy = torch.zeros(shape, dtype=torch.float32, device=input_ids.device) if return_entropy else None
    if len(packed.predict_at) == 0:
        return log_probs, entropy
    output = model(
        input_ids=packed.input_ids,
        position_ids=packed.position_ids,
        attention_mask=None,
        logits_to_keep=packed.predict_at,
        use_cache=False,
    )
    logits = output.logits[0]  # [K, V]
    labels = packed.input_ids[0, packed.predict_at + 1]
    values = log_probs_from_logits(logits, labels, temperature)
    log_probs = log_probs.index_put((packed.rows, packed.cols), values)
    if return_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            ent = entropy_from_logits(logits if entropy_grad else logits.detach(), temperature)
        entropy = entropy.index_put((packed.rows, packed.cols), ent)
    return log_probs, entropy
