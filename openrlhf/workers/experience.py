"""The batch that policy and reference workers consume: tensors with masks, cut into shards and micro-batches.

Layout (as in OpenRLHF): ``sequences`` is ``[left-padded prompt | right-padded response]`` of width L; the
response occupies the last R positions and ``response_mask`` [B, R] marks its real tokens. Every per-token
tensor (log-probs, advantages) is [B, R] and aligned with those positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch


@dataclass
class Experience:
    sequences: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    multimodal: list[dict[str, torch.Tensor] | None] = field(default_factory=list)
    old_log_probs: torch.Tensor | None = None
    ref_log_probs: torch.Tensor | None = None
    sampler_log_probs: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not self.multimodal:
            self.multimodal = [None] * self.sequences.shape[0]

    @property
    def batch_size(self) -> int:
        return int(self.sequences.shape[0])

    @property
    def num_response_tokens(self) -> int:
        return int(self.response_mask.shape[1])

    def select(self, index: slice | list[int] | torch.Tensor) -> Experience:
        """Rows ``index`` of every per-row field."""
        if isinstance(index, slice):
            rows = list(range(self.batch_size))[index]
        elif isinstance(index, torch.Tensor):
            rows = index.tolist()
        else:
            rows = list(index)
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "multimodal":
                values[f.name] = [value[i] for i in rows]
            elif value is not None:
                values[f.name] = value[rows]
            else:
                values[f.name] = None
        return Experience(**values)

    def shard(self, num_shards: int) -> list[Experience]:
        """Split rows into ``num_shards`` equal contiguous parts (one per data-parallel rank)."""
        if self.batch_size % num_shards:
            raise ValueError(f"{self.batch_size} rows cannot be split evenly over {num_shards} workers")
        size = self.batch_size // num_shards
        return [self.select(slice(i * size, (i + 1) * size)) for i in range(num_shards)]

    def has_images(self) -> bool:
        return any(m is not None for m in self.multimodal)
