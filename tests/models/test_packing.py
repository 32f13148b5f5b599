"""Padding-free packed forward and token-budget micro-batches, checked against the plain padded forward of
the real tiny Qwen2 (transformers' own SDPA packed-sequence masking does the separation)."""

from __future__ import annotations

import pytest
import torch

from openrlhf.models.loading import load_model
from openrlhf.models.logprobs import compute_token_log_probs
from openrlhf.models.packing import compute_packed_token_log_probs, pack_rows
from openrlhf.workers.experience import Experience
from openrlhf.workers.micro_batching import (
    fixed_size_micro_batches,
    scatter_rows,
    token_budget_groups,
    token_budget_micro_batches,
    trim_padding,
)

PAD = 0


def _experience(prompts: list[int], responses: list[int], seed: int = 0, extra_prompt_pad: int = 2) -> Experience:
    """Rows [left-padded prompt | right-padded response] with the given real lengths (response 0 allowed)."""
    gen = torch.Generator().manual_seed(seed)
    prompt_width = max(prompts) + extra_prompt_pad
    resp_width = max(responses) + 1
    rows = len(prompts)
    seq = torch.full((rows, prompt_width + resp_width), PAD, dtype=torch.long)
    att = torch.zeros_like(seq)
    mask = torch.zeros(rows, resp_width)
    for r, (p, n) in enumerate(zip(prompts, responses, strict=True)):
        seq[r, prompt_width - p : prompt_width] = torch.randint(5, 2000, (p,), generator=gen)
        seq[r, prompt_width : prompt_width + n] = torch.randint(5, 2000, (n,), generator=gen)
        att[r, prompt_width - p : prompt_width + n] = 1
        mask[r, :n] = 1
    return Experience(seq, att, mask, advantages=torch.randn(rows, resp_width, generator=gen))


@pytest.fixture(scope="module")
def model(tiny_lm_path):
    torch.manual_seed(0)
    return load_model(str(tiny_lm_path), dtype="float32").eval()


def test_packed_logprobs_equal_padded_and_gradients_too(model):
    exp = _experience([7, 3, 12, 5], [9, 0, 4, 14])
    n = exp.num_response_tokens
    padded, padded_ent = compute_token_log_probs(
        model, exp.sequences, exp.attention_mask, num_response_tokens=n, return_entropy=True
    )
    packed, packed_ent = compute_packed_token_log_probs(
        model, exp.sequences, exp.attention_mask, num_response_tokens=n, return_entropy=True
    )
    mask = exp.response_mask.bool()
    assert torch.allclose(packed[mask], padded[mask], atol=1e-5)
    assert torch.allclose(packed_ent[mask], padded_ent[mask], atol=1e-5)
    assert (packed[~mask] == 0).all()

    def grads(fn):
        model.zero_grad()
        lp, _ = fn(model, exp.sequences, exp.attention_mask, num_response_tokens=n)
        (lp * exp.response_mask * exp.advantages).sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    for a, b in zip(grads(compute_token_log_probs), grads(compute_packed_token_log_probs), strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_pack_rows_skips_padding_and_restarts_positions():
    exp = _experience([3, 2], [2, 1])
    packed = pack_rows(exp.sequences, exp.attention_mask, exp.num_response_tokens)
    assert packed.input_ids.shape == (1, 3 + 2 + 2 + 1)
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2]]
    # response token j of a row is predicted from the token before it
    assert packed.predict_at.tolist() == [2, 3, 6]
    assert list(zip(packed.rows.tolist(), packed.cols.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 0)]


def test_trim_padding_drops_columns_no_row_uses():
    exp = _experience([3, 5], [2, 4], extra_prompt_pad=3)
    trimmed = trim_padding(exp.select([0]))
    assert trimmed.sequences.shape == (1, 3 + 2) and trimmed.num_response_tokens == 2
    assert trimmed.attention_mask.all()
    assert torch.equal(trimmed.advantages, exp.advantages[:1, :2])


def test_token_budget_groups_keep_every_row_once_within_budget():
    lengths = [30, 8, 25, 12, 40, 9, 9, 70]
    prompts = [5, 4, 5, 4, 6, 4, 4, 6]
    for packed in (False, True):
        groups = token_budget_groups(lengths, prompts, 64, packed)
        assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
        for g in groups:
            if packed:
                cost = sum(lengths[i] for i in g)
            else:
                cost = len(g) * (max(prompts[i] for i in g) + max(lengths[i] - prompts[i] for i in g))
            assert cost <= 64 or len(g) == 1  # a row over the budget goes alone
        assert any(len(g) > 1 for g in groups)


def test_micro_batches_scatter_back_to_the_padded_result(model):
    exp = _experience([4, 9, 2, 6, 3], [10, 1, 6, 0, 3], seed=3)
    n = exp.num_response_tokens
    full, _ = compute_token_log_probs(model, exp.sequences, exp.attention_mask, num_response_tokens=n)
    for mbs in (fixed_size_micro_batches(exp, 2), token_budget_micro_batches(exp, 40, packed=False)):
        pieces = []
        for mb in mbs:
            lp, _ = compute_token_log_probs(
                model, mb.exp.sequences, mb.exp.attention_mask, num_response_tokens=mb.response_width
            )
            pieces.append((mb, lp.detach()))
        out = scatter_rows(pieces, exp.batch_size, n)
        mask = exp.response_mask.bool()
        assert torch.allclose(out[mask], full.detach()[mask], atol=1e-5)
    assert len(token_budget_micro_batches(exp, 40, packed=False)) > 1
