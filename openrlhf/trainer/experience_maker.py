"""From a batch of prompts to training experience: generate, score, pad into tensors.

Steps 2-3 of a training step (sample prompts, generate, score, log-probs, advantages, train, push weights):
the rollout engines generate n responses per prompt to the prompts :class:`~openrlhf.rollout.prompt_encoder.PromptEncoder`
encoded, the reward source scores them; this module turns the result into an :class:`Experience` (log-probs
and advantages are added by the driver, openrlhf/trainer/driver.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from openrlhf.config import Config
from openrlhf.rollout.base import GenerationOutput, SamplingParams
from openrlhf.rollout.prompt_encoder import EncodedPrompt, PromptEncoder
from openrlhf.workers.experience import Experience

if TYPE_CHECKING:
    from openrlhf.trainer.reward_client import RewardResult


@dataclass
class Rollout:
    """Everything one step produced before training: per response, its prompt and scores."""

    prompts: list[EncodedPrompt]
    outputs: list[GenerationOutput]  # len(prompts) * n, grouped by prompt
    n: int
    rewards: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    scores: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    components: dict[str, list[float]] = field(default_factory=dict)
    extra_logs: dict[str, float] = field(default_factory=dict)

    def prompt_of(self, row: int) -> EncodedPrompt:
        return self.prompts[row // self.n]


def sampling_params(cfg: Config, seed: int, *, greedy: bool = False, n: int | None = None) -> SamplingParams:
    return SamplingParams(
        n=1 if greedy else (n or cfg.rollout.n_samples_per_prompt),
        temperature=0.0 if greedy else cfg.rollout.temperature,
        top_p=1.0 if greedy else cfg.rollout.top_p,
        top_k=-1 if greedy else cfg.rollout.top_k,
        max_new_tokens=cfg.rollout.max_new_tokens,
        seed=seed,
    )


def generate_pieces(
    engines: list, prompts: list[EncodedPrompt], params: SamplingParams
) -> Iterator[list[tuple[int, list[GenerationOutput]]]]:
    """Prompts dealt round-robin over the engines; yields (prompt index, its n outputs) for the groups each
    engine has finished, as they finish on any engine (``generate_stream`` on each, read as it streams).

    Engine i samples with ``engine_params(params, i)``: its own seed derived from the step's, from which the
    vLLM engine derives one per prompt (openrlhf/rollout/dispatch.py), so no two prompts share a stream.
    """
    from openrlhf.rollout.dispatch import engine_params
    from openrlhf.utils.actor_calls import stream_calls

    if not prompts:
        return
    width = len(engines)
    calls = [
        (engine, "generate_stream", ([p.request for p in prompts[index::width]], engine_params(params, index)))
        for index, engine in enumerate(engines[: len(prompts)])
    ]
    for engine_index, piece in stream_calls(calls):
        yield [(engine_index + k * width, outputs) for k, outputs in piece]


def score_groups(
    reward_source, encoder: PromptEncoder, prompts: list[EncodedPrompt], groups: list[list[GenerationOutput]]
) -> RewardResult:
    """The reward source's answer for the responses of ``groups`` (one list per prompt), in order."""
    queries, prompt_texts, labels = [], [], []
    for prompt, outputs in zip(prompts, groups, strict=True):
        label = prompt.sample.reward_label()
        for output in outputs:
            queries.append(prompt.request.prompt_text + encoder.decode_response(output))
            prompt_texts.append(prompt.request.prompt_text)
            labels.append(label)
    return reward_source.score(queries, prompt_texts, labels)


def _prompt_ids(rollout: Rollout, row: int) -> list[int]:
    """Row ``row``'s prompt: the encoded prompt, or for a multi-turn episode (an output with a ``loss_mask``) the
    ids its environment's reset() gave the engine, token for token."""
    output = rollout.outputs[row]
    return output.prompt_token_ids if output.loss_mask else rollout.prompt_of(row).request.prompt_token_ids


def build_experience(rollout: Rollout, pad_token_id: int) -> Experience:
    """Pad prompts on the left and responses on the right into [prompt | response] rows."""
    rows = len(rollout.outputs)
    prompt_len = max(len(_prompt_ids(rollout, r)) for r in range(rows))
    resp_len = max(1, max(len(o.output_token_ids) for o in rollout.outputs))
    sequences = torch.full((rows, prompt_len + resp_len), pad_token_id, dtype=torch.long)
    attention = torch.zeros((rows, prompt_len + resp_len), dtype=torch.long)
    response_mask = torch.zeros((rows, resp_len), dtype=torch.float32)
    sampler = torch.zeros((rows, resp_len), dtype=torch.float32)
    multimodal: list[dict[str, Any] | None] = []
    for r, output in enumerate(rollout.outputs):
        prompt = rollout.prompt_of(r)
        p_ids = _prompt_ids(rollout, r)
        o_ids = output.output_token_ids
        sequences[r, prompt_len - len(p_ids) : prompt_len] = torch.tensor(p_ids)
        attention[r, prompt_len - len(p_ids) : prompt_len] = 1
        if o_ids:
            sequences[r, prompt_len : prompt_len + len(o_ids)] = torch.tensor(o_ids)
            attention[r, prompt_len : prompt_len + len(o_ids)] = 1
            if output.loss_mask:  # a multi-turn episode: the environment's tokens are context, not loss
                response_mask[r, : len(o_ids)] = torch.tensor(output.loss_mask, dtype=torch.float32)
            else:
                response_mask[r, : len(o_ids)] = 1.0
            sampler[r, : len(output.log_probs)] = torch.tensor(output.log_probs, dtype=torch.float32)
        multimodal.append(prompt.multimodal)
    return Experience(sequences, attention, response_mask, multimodal, sampler_log_probs=sampler)
