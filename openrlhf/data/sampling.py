"""VLM-R1's per-dataset sampling strategies: all | first:N | end:N | random:N | random:P%."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal, TypeVar

T = TypeVar("T")

_PATTERN = re.compile(r"^(first|end|random):(\d+(?:\.\d+)?)(%?)$")


@dataclass(frozen=True)
class SamplingStrategy:
    kind: Literal["all", "first", "end", "random"]
    amount: float = 0.0
    percent: bool = False

    def count(self, total: int) -> int:
        if self.kind == "all":
            return total
        n = int(total * self.amount / 100) if self.percent else int(self.amount)
        return max(0, min(total, n))

    def apply(self, rows: list[T], seed: int = 42) -> list[T]:
        """Select rows: first N, last N, or N (or P%) at random with a fixed seed, order kept."""
        n = self.count(len(rows))
        if self.kind == "all":
            return list(rows)
        if self.kind == "first":
            return rows[:n]
        if self.kind == "end":
            return rows[len(rows) - n :] if n else []
        picked = sorted(random.Random(seed).sample(range(len(rows)), n))
        return [rows[i] for i in picked]


def parse_sampling_strategy(text: str) -> SamplingStrategy:
    """Parse ``all``, ``first:N``, ``end:N``, ``random:N`` or ``random:P%``; raise ValueError otherwise."""
    text = (text or "all").strip()
    if text == "all":
        return SamplingStrategy("all")
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"sampling strategy {text!r} is not one of all | first:N | end:N | random:N | random:P%")
    kind, amount, percent = match.group(1), float(match.group(2)), bool(match.group(3))
    if percent and kind != "random":
        raise ValueError(f"sampling strategy {text!r}: a percentage is only allowed with random")
    if percent and amount > 100:
        raise ValueError(f"sampling strategy {text!r}: percentage above 100")
    if not percent and amount != int(amount):
        raise ValueError(f"sampling strategy {text!r}: N must be a whole number")
    return SamplingStrategy(kind, amount, percent)  # type: ignore[arg-type]
