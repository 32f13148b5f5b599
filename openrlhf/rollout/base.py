"""The rollout engine interface: the driver talks to every engine (HF or vLLM) through this."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_new_tokens: int = 64
    seed: int | None = None


@dataclass
class GenerationRequest:
    """One prompt: its chat-templated text, its token ids, and its images (PIL images, in order)."""

    prompt_text: str
    prompt_token_ids: list[int]
    images: list[Any] = field(default_factory=list)


@dataclass
class GenerationOutput:
    """One sampled response: token ids, decoded text and the sampler's log-prob of each token."""

    prompt_token_ids: list[int]
    output_token_ids: list[int]
    text: str
    logprobs: list[float]
    finish_reason: str = "length"


class RolloutEngine(ABC):
    """generate() returns, per request, a list of n GenerationOutput."""

    @abstractmethod
    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[list[GenerationOutput]]:
        ...

    @abstractmethod
    def update_weights(self, named_tensors: Any) -> None:
        """Load new policy weights (name -> tensor, or an engine-specific handle)."""

    def sleep(self) -> None:
        """Free accelerator memory while colocated training runs (no-op where unsupported)."""

    def wake_up(self) -> None:
        """Undo sleep()."""
