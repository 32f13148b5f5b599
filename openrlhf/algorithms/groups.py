"""Group layout: a batch of B = G * n samples, n consecutive responses per prompt."""

from __future__ import annotations

from torch import Tensor


def check_group_layout(batch_size: int, n_samples_per_prompt: int, name: str = "rewards") -> int:
    """Return the number of groups G = B / n, or raise if B is not a whole number of groups."""
    if isinstance(n_samples_per_prompt, bool) or not isinstance(n_samples_per_prompt, int):
        raise TypeError(f"n_samples_per_prompt must be an int; got {n_samples_per_prompt!r}")
    if n_samples_per_prompt < 1:
        raise ValueError(
            f"n_samples_per_prompt (rollout.n_samples_per_prompt) must be >= 1; got {n_samples_per_prompt}"
        )
    if batch_size == 0 or batch_size % n_samples_per_prompt != 0:
        raise ValueError(
            f"{name} has {batch_size} samples, not a whole number of groups of "
            f"n_samples_per_prompt={n_samples_per_prompt} (rollout.n_samples_per_prompt): the batch must hold "
            "every response of each prompt, consecutively"
        )
    return batch_size // n_samples_per_prompt


def group_view(values: Tensor, n_samples_per_prompt: int, name: str = "rewards") -> Tensor:
    """View a [B] tensor as [G, n] (group g holds samples g*n .. g*n + n - 1)."""
    if values.dim() != 1:
        raise ValueError(f"{name} must have shape [B] (one value per response); got shape {tuple(values.shape)}")
    groups = check_group_layout(values.shape[0], n_samples_per_prompt, name)
    return values.reshape(groups, n_samples_per_prompt)
