"""The sampler's log-prob of each generated token, recorded during Hugging Face ``generate``.

Definition used by every engine of this project (the "sampler log-prob"):

    logp_t = log_softmax(z_t / T)[y_t]        (T = 1 when sampling greedily, temperature 0)

where z_t are the model's logits at step t and y_t the sampled token, *before* top-k / top-p truncation.
It is the quantity the policy workers recompute (log-softmax of temperature-scaled logits), so the
importance ratio pi_theta / pi_sampler is 1 when the weights agree, whatever top-k / top-p cut off. With
top_p = 1 and top_k = -1 (the RL default) it is also exactly the distribution the token was drawn from.

vLLM's default logprobs are those of the raw logits (T = 1); its ``logprobs_mode="processed_logprobs"``
gives log_softmax(z_t / T) after truncation. The vLLM engine asks for processed logprobs, which equal the
definition above whenever top_p = 1 and top_k = -1 (see ``vllm_engine.py``).
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor


class SamplerLogProbRecorder(LogitsProcessor):
    """A pass-through logits processor that records log_softmax(scores / T) of the token drawn next.

    Hugging Face runs custom processors after the built-in penalty processors and before the sampling
    warpers (temperature, top-k, top-p), so ``scores`` here are the untruncated logits. Only one [B, V]
    distribution is kept: at each call the previous step's is gathered at the token just appended.
    """

    def __init__(self, temperature: float, prompt_length: int) -> None:
        self.temperature = temperature if temperature > 0 else 1.0
        self.prompt_length = prompt_length
        self._pending: torch.Tensor | None = None
        self._steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._pending is not None:
            last = input_ids[:, -1:]
            self._steps.append(self._pending.gather(-1, last).squeeze(-1))
        self._pending = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        return scores

    def log_probs(self, sequences: torch.LongTensor) -> torch.Tensor:
        """[B, new_tokens] log-probs aligned with ``sequences[:, prompt_length:]``."""
        new_tokens = sequences.shape[1] - self.prompt_length
        steps = self._steps[:new_tokens]
        if len(steps) < new_tokens and self._pending is not None:
            last = sequences[:, self.prompt_length + len(steps)].unsqueeze(-1)
            steps = steps + [self._pending.gather(-1, last).squeeze(-1)]
        if len(steps) != new_tokens:
            raise RuntimeError(f"sampler log-probs: recorded {len(steps)} steps for {new_tokens} generated tokens")
        if not steps:
            return torch.zeros(sequences.shape[0], 0)
        return torch.stack(steps, dim=1)
