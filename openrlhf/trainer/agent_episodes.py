"""A step's multi-turn rollout: the agent file's episodes on the run's engines, rewarded by the agent.

The single-turn path (openrlhf/trainer/streamed_rollout.py) asks the engines for n responses per prompt and the
reward source for their scores; here each of the n samples is an episode of the agent file
(openrlhf/rollout/agent_rollout.py), the engines generate its turns, and its reward is what the environment's
``step`` calls returned. The result has the single-turn path's shape, so the rest of the step (filters,
advantages, training) does not change; the environment's tokens are masked out of the loss by each output's
``loss_mask``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from openrlhf.rollout.agent_rollout import run_episodes
from openrlhf.rollout.base import GenerationOutput, GenerationRequest, SamplingParams
from openrlhf.rollout.prompt_encoder import EncodedPrompt, PromptEncoder
from openrlhf.trainer.experience_maker import Rollout
from openrlhf.trainer.streamed_rollout import ScoredRollout
from openrlhf.utils.agent import AgentError, AgentExecutorBase


def engines_generate(engines: list) -> Callable[[list[GenerationRequest], SamplingParams], list[GenerationOutput]]:
    """One response per request, the requests dealt round-robin over ``engines`` (each with its own seed)."""
    from openrlhf.rollout.dispatch import engine_params
    from openrlhf.utils.actor_calls import wait_for

    def generate_batch(requests: list[GenerationRequest], params: SamplingParams) -> list[GenerationOutput]:
        width = len(engines)
        used = list(enumerate(engines[: len(requests)]))
        refs = [engine.generate.remote(requests[i::width], engine_params(params, i)) for i, engine in used]
        answers = wait_for(refs, f"generate {len(requests)} agent turns")
        outputs: list[GenerationOutput | None] = [None] * len(requests)
        for (i, _), groups in zip(used, answers, strict=True):
            for k, group in enumerate(groups):
                outputs[i + k * width] = group[0]
        return outputs  # type: ignore[return-value]

    return generate_batch


def score_final_turns(reward_source, decode: Callable[[list[int]], str], episodes: list, labels: list, n: int):
    """The reward source's scores of each episode's final turn, in OpenRLHF's protocol: the query is the whole
    conversation, the prompt everything before the last turn, so the response the server cuts out is the final
    answer (a reward that wants the tool calls too finds them in the query)."""
    queries = [decode(e.tokens) for e in episodes]
    before_last = [decode(e.tokens[: e.action_ranges[-1][0]]) for e in episodes]
    return reward_source.score(queries, before_last, [labels[i // n] for i in range(len(episodes))])


def episode_max_length(encoder: PromptEncoder) -> int:
    """OpenRLHF's ``max_length`` of an episode: vllm.max_model_len (its data.max_len), else prompt + response."""
    cfg = encoder.cfg
    return cfg.vllm.max_model_len or cfg.data.prompt_max_len + cfg.rollout.max_new_tokens


def generate_episodes(
    engines: list,
    prompts: list[EncodedPrompt],
    params: SamplingParams,
    agent: AgentExecutorBase,
    encoder: PromptEncoder,
    *,
    reward_source=None,
    on_generated: Callable[[], None] | None = None,
) -> ScoredRollout:
    """``params.n`` episodes per prompt; the mean of each ``extra_logs`` key of the agent's. Rewards and scores:
    the agent's, or with ``reward_source`` (the built-in tools) its scores of the final turns
    (:func:`score_final_turns`) plus the agent's rewards."""
    for index, prompt in enumerate(prompts):
        if prompt.request.images:
            raise AgentError(
                f"prompt {index} ({prompt.sample.source}:{prompt.sample.line}) has images: multi-turn image "
                "episodes are not supported yet (text prompts are)"
            )
    t0 = time.perf_counter()
    episodes = run_episodes(
        agent,
        engines_generate(engines),
        encoder.tokenizer,
        [(p.request.prompt_text, p.sample.reward_label()) for p in prompts],
        params,
        episode_max_length(encoder),
    ).episodes
    t1 = time.perf_counter()
    if on_generated is not None:
        on_generated()
    decode = lambda ids: encoder.tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    flat = [episode for group in episodes for episode in group]
    rollout = Rollout(prompts, [e.generation_output(decode) for e in flat], params.n)
    rollout.rewards = torch.tensor([e.reward for e in flat], dtype=torch.float32)
    rollout.scores = torch.tensor([e.score for e in flat], dtype=torch.float32)
    rollout.components = {}
    keys = sorted({key for e in flat for key in e.extra_logs})
    rollout.extra_logs = {key: sum(e.extra_logs.get(key, 0.0) for e in flat) / len(flat) for key in keys}
    windows = []
    if reward_source is not None:
        start = time.perf_counter()
        result = score_final_turns(reward_source, decode, flat, [p.sample.reward_label() for p in prompts], params.n)
        windows.append((start, time.perf_counter()))
        rollout.rewards = rollout.rewards + torch.tensor(result.rewards, dtype=torch.float32)
        rollout.scores = torch.tensor(result.scores, dtype=torch.float32)
        rollout.components = {name: list(values) for name, values in result.components.items()}
        rollout.extra_logs = {**result.extra_logs, **rollout.extra_logs}
    rollout.extra_logs["agent_turns"] = sum(len(e.action_ranges) for e in flat) / max(1, len(flat))
    return ScoredRollout(rollout, (t0, t1), windows)
