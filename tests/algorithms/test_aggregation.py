"""Loss aggregation modes: hand-computed values, global counts, and how the modes relate (hypothesis)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from openrlhf.algorithms import aggregate_loss

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)


@pytest.mark.parametrize(
    ("mode", "kwargs", "expected"),
    [
        ("token-mean", {}, 7 / 3),  # (1 + 2 + 4) / 3 tokens
        ("token-mean", {"global_token_count": 14}, 0.5),
        ("seq-mean-token-mean", {}, (1.5 + 4.0) / 2),
        ("seq-mean-token-mean", {"global_seq_count": 4}, (1.5 + 4.0) / 4),
        ("seq-mean-token-sum", {}, (3.0 + 4.0) / 2),
        ("seq-mean-token-sum-norm", {}, (3.0 + 4.0) / 2 / 3),  # L_max = the mask's width
        ("seq-mean-token-sum-norm", {"max_response_len": 7}, (3.0 + 4.0) / 2 / 7),
    ],
)
def test_modes_by_hand(mode, kwargs, expected):
    assert aggregate_loss(LOSS, MASK, mode, **kwargs).item() == pytest.approx(expected)


def test_empty_response_counts_as_a_sequence_with_zero_loss():
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    assert aggregate_loss(LOSS, mask, "seq-mean-token-mean").item() == pytest.approx(1.5 / 2)
    assert aggregate_loss(LOSS, mask, "seq-mean-token-sum").item() == pytest.approx(3.0 / 2)
    assert aggregate_loss(LOSS, mask, "token-mean").item() == pytest.approx(1.5)
    assert aggregate_loss(LOSS, torch.zeros_like(mask), "token-mean").item() == 0.0


def test_micro_batch_shares_sum_to_the_global_sequence_mean():
    loss = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    mask = torch.arange(5).unsqueeze(0) < torch.tensor([5, 1, 3, 2, 4, 5]).unsqueeze(1)
    for mode in ("seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        whole = aggregate_loss(loss, mask, mode)
        shares = sum(aggregate_loss(loss[i : i + 3], mask[i : i + 3], mode, global_seq_count=6) for i in (0, 3))
        torch.testing.assert_close(shares, whole)


def test_bad_arguments():
    with pytest.raises(ValueError, match="global_token_count must be a positive count"):
        aggregate_loss(LOSS, MASK, "token-mean", global_token_count=0)
    with pytest.raises(ValueError, match="max_response_len must be a positive int"):
        aggregate_loss(LOSS, MASK, "seq-mean-token-sum-norm", max_response_len=0)
    with pytest.raises(ValueError, match=r"loss_mat has shape \(2, 2\)"):
        aggregate_loss(LOSS[:, :2], MASK, "token-mean")
    with pytest.raises(ValueError, match=r"response_mask must have shape \[B, T\]"):
        aggregate_loss(LOSS, MASK[0], "token-mean")


def test_micro_batch_shares_sum_to_the_global_token_mean():
    gen = torch.Generator().manual_seed(0)
    loss = torch.randn(6, 5, generator=gen)
    mask = torch.arange(5).unsqueeze(0) < torch.tensor([5, 1, 3, 2, 4, 5]).unsqueeze(1)
    whole = aggregate_loss(loss, mask, "token-mean")
    total = int(mask.sum())
    shares = sum(
        aggregate_loss(loss[i : i + 2], mask[i : i + 2], "token-mean", global_token_count=total) for i in (0, 2, 4)
    )
    torch.testing.assert_close(shares, whole)


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 6),
    length=st.integers(1, 8),
    pad=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_modes_agree_on_equal_length_sequences(b, length, pad, seed):
    loss = torch.randn(b, length + pad, generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(b, length + pad, dtype=torch.bool)
    mask[:, :length] = True
    token_mean = aggregate_loss(loss, mask, "token-mean")
    # every |o_i| = L: the mean of per-sequence means is the token mean; the sum mode is L times it
    torch.testing.assert_close(aggregate_loss(loss, mask, "seq-mean-token-mean"), token_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        aggregate_loss(loss, mask, "seq-mean-token-sum"), length * token_mean, atol=1e-4, rtol=1e-5
    )
    # Dr.GRPO: sum over tokens / L_max; with L_max = L it is the token mean again
    norm = aggregate_loss(loss, mask, "seq-mean-token-sum-norm", max_response_len=length)
    torch.testing.assert_close(norm, token_mean, atol=1e-5, rtol=1e-5)
    wide = aggregate_loss(loss, mask, "seq-mean-token-sum-norm")  # L_max = padded width
    torch.testing.assert_close(wide, token_mean * length / (length + pad), atol=1e-5, rtol=1e-5)
