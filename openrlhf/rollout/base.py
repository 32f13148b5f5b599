"""The rollout engine interface: the driver talks to every engine (HF or vLLM) through this."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
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

    def validate(self) -> None:
        """Raise ValueError naming every field out of range (top_k: -1 for off, or >= 1)."""
        problems = []
        if self.n < 1:
            problems.append(f"n={self.n} (must be >= 1)")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens={self.max_new_tokens} (must be >= 1)")
        if self.temperature < 0:
            problems.append(f"temperature={self.temperature} (must be >= 0; 0 is greedy)")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p={self.top_p} (must be in (0, 1])")
        if self.top_k < -1 or self.top_k == 0:
            problems.append(f"top_k={self.top_k} (must be -1 for off, or >= 1)")
        if problems:
            raise ValueError("bad SamplingParams: " + "; ".join(problems))


@dataclass
class GenerationRequest:
    """One prompt: its chat-templated text, its token ids, and its images (PIL images, in order)."""

    prompt_text: str
    prompt_token_ids: list[int]
    images: list[Any] = field(default_factory=list)


@dataclass
class GenerationOutput:
    """One sampled response: token ids, decoded text and the sampler's log-prob of each token.

    prompt_token_ids: the ids the model saw (for image rows: with the image placeholders expanded).
    output_token_ids: up to and including the first eos token; no padding.
    text: the decoded response, special tokens dropped but <think>/<answer> tags kept.
    log_probs: log_softmax(logits / T) at each output token, before top-k/top-p truncation
        (see openrlhf/rollout/sampler_logprobs.py); same length as output_token_ids.
    finish_reason: "stop" (ended by eos) or "length" (hit max_new_tokens).
    weight_switches: with partial rollouts (openrlhf/rollout/weight_switch.py), for each weight update that
        landed while this response was generated, how many of its tokens had been sampled by then (tokens
        before that index come from the older weights); empty when one version generated it all.
    loss_mask: per output token, 1 where the policy sampled it and 0 where an environment wrote it (multi-turn
        episodes, openrlhf/rollout/agent_rollout.py); empty when the policy sampled every token.
    """

    prompt_token_ids: list[int]
    output_token_ids: list[int]
    text: str
    log_probs: list[float]
    finish_reason: str = "length"
    weight_switches: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)


FinishedGroups = list[tuple[int, list[GenerationOutput]]]
"""Groups that finished together: (request index, its n outputs), as ``generate_stream`` yields them."""


class RolloutEngine(ABC):
    """generate() returns, per request, a list of n GenerationOutput; generate_stream() the same in pieces."""

    @abstractmethod
    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[list[GenerationOutput]]: ...

    def generate_stream(self, requests: list[GenerationRequest], params: SamplingParams) -> Iterator[FinishedGroups]:
        """generate()'s groups as they finish: each piece holds the requests whose n responses are all done,
        so the caller scores them while the rest generate. Every request appears in exactly one piece, and the
        responses equal generate()'s for the same params. This default yields one piece at the end."""
        yield list(enumerate(self.generate(requests, params)))

    @abstractmethod
    def update_weights(self, named_tensors: Any) -> None:
        """Load new policy weights (name -> tensor, or an engine-specific handle)."""

    def init_weight_sync_group(
        self, master_address: str, master_port: int, rank: int, world_size: int, group_name: str, backend: str = "gloo"
    ) -> Any:
        """Join the weight-sync group whose rank 0 is policy rank 0 (see openrlhf/rollout/weight_sync.py)."""
        raise NotImplementedError(f"{type(self).__name__} has no weight-sync group")

    def receive_weights(self, meta: list[tuple[str, str, list[int]]]) -> Any:
        """Receive one broadcast per (name, dtype, shape) of ``meta`` from rank 0 of the sync group."""
        raise NotImplementedError(f"{type(self).__name__} has no weight-sync group")

    def sleep(self) -> None:
        """Free accelerator memory while colocated training runs (no-op where unsupported)."""
        return None

    def wake_up(self) -> None:
        """Undo sleep()."""
        return None
