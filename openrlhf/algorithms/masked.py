"""Masked reductions over [B, T] token tensors, and the shape checks every algorithm shares.

A response mask is 1 (or True) on response tokens that count and 0 on padding; every reduction here
ignores the padding entirely, whatever values it holds (NaN included).
"""

from __future__ import annotations

import torch
from torch import Tensor


def as_float_mask(mask: Tensor) -> Tensor:
    """The mask as float 0/1, so padding can be multiplied away."""
    return mask.to(torch.float32) if mask.dtype == torch.bool else (mask != 0).to(torch.float32)


def masked_fill_padding(values: Tensor, mask: Tensor, fill: float = 0.0) -> Tensor:
    """values where mask is set, ``fill`` elsewhere (NaN-safe: NaN on padding disappears)."""
    return torch.where(mask.bool(), values, torch.full_like(values, fill))


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """sum_{i: m_i=1} x_i  (over ``dim``, or over everything)."""
    kept = masked_fill_padding(values, mask)
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """mean_m(x) = sum_i m_i x_i / max(sum_i m_i, 1)."""
    count = as_float_mask(mask)
    count = count.sum() if dim is None else count.sum(dim=dim)
    return masked_sum(values, mask, dim) / count.clamp_min(1.0)


def masked_var(values: Tensor, mask: Tensor) -> Tensor:
    """Population variance over the valid entries: sum_i m_i (x_i - mean_m(x))^2 / sum_i m_i."""
    mean = masked_mean(values, mask)
    return masked_mean((values - mean) ** 2, mask)


def masked_whiten(values: Tensor, mask: Tensor, eps: float, *, scale: bool = True) -> Tensor:
    """Batch whitening over all valid tokens: (x - mean_m(x)) / (std_m(x) + eps), padding set to 0.

    std_m is the population standard deviation over valid tokens. With ``scale=False`` only the mean
    is removed: x - mean_m(x).
    """
    mean = masked_mean(values, mask)
    centred = values - mean
    if scale:
        centred = centred / (masked_var(values, mask).sqrt() + eps)
    return masked_fill_padding(centred, mask)


def check_token_tensor(name: str, tensor: Tensor, reference: Tensor, reference_name: str = "response_mask") -> None:
    """Raise a ValueError naming ``name`` unless it is a [B, T] tensor shaped like ``reference``."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [B, T]; got {type(tensor).__name__}")
    if tensor.shape != reference.shape:
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)}, but {reference_name} has shape {tuple(reference.shape)}: "
            "both must be [B, T] over the same response tokens"
        )


def check_mask(mask: Tensor, name: str = "response_mask") -> None:
    """A response mask must be a 2-D [B, T] tensor."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [B, T]; got {type(mask).__name__}")
    if mask.dim() != 2:
        raise ValueError(f"{name} must have shape [B, T]; got shape {tuple(mask.shape)}")
