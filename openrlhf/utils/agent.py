"""OpenRLHF's agent API (``openrlhf.utils.agent``), so an OpenRLHF agent file runs here unchanged.

An agent file (``--train.agent_func_path FILE.py``) subclasses :class:`AgentInstanceBase` (one environment per
episode: async ``reset`` and ``step``) and exports ``AgentExecutor``, usually ``MultiTurnAgentExecutor`` bound to
its instance class. The rollout mode that drives it is openrlhf/rollout/agent_rollout.py; this module is the API
the file imports and the episode loop, written against the contract of OpenRLHF 0.11's module:

- ``reset({"observation": prompt, "label": label})`` returns ``{"observation": text}``;
- ``step({"observation_text", "action_text", "label", "sampling_params"})`` returns ``rewards`` (a number or a
  one-element tensor), ``scores`` (optional, for the dynamic filter), ``environment_feedback`` (text appended to
  the conversation), ``environment_images`` (optional), ``done``, ``sampling_params`` (optional, for the next
  turn) and ``extra_logs`` (optional: name -> number);
- ``execute(prompt, label, sampling_params, max_length, hf_tokenizer, llm_engine, images)`` returns the episode:
  ``observation_tokens`` (every token id of the conversation), ``action_ranges`` ([start, end) of each span the
  policy generated), ``rollout_log_probs`` (one per observation token, 0 outside the actions), ``reward``,
  ``scores``, ``truncated`` and ``extra_logs``.

Token in, token out: the conversation is kept as token ids. An action is the engine's ids as sampled, the
environment's feedback is tokenised on its own (no special tokens added) and appended; nothing is decoded and
encoded again, so the trained sequence is exactly what the engine saw and produced.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any

from openrlhf.utils.errors import UserError


class AgentError(UserError):
    """An agent file or its environment gave something this project cannot use; the message says what."""


def as_number(value: Any, what: str) -> float:
    """A reward or score given as a number, a one-element tensor or array, or None (0.0)."""
    if value is None:
        return 0.0
    if hasattr(value, "item"):
        try:
            return float(value.item())
        except (ValueError, RuntimeError) as exc:
            raise AgentError(f"{what} must hold one number; got a tensor of shape {tuple(value.shape)}") from exc
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise AgentError(f"{what} must be a number or a one-element tensor; got {value!r:.80}") from exc


class AgentExecutorBase(ABC):
    """Runs one episode for a prompt; ``llm_engine.generate(token_ids, sampling_params)`` samples a turn."""

    @abstractmethod
    async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None):
        raise NotImplementedError


class AgentInstanceBase(ABC):
    """One environment, made fresh for every episode."""

    @abstractmethod
    def __init__(self, *args, **kwargs):
        pass

    async def reset(self, states: dict, **kwargs):
        return states

    @abstractmethod
    async def step(self, state_dict: dict, **kwargs):
        raise NotImplementedError


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


class MultiTurnAgentExecutor(AgentExecutorBase):
    """The episode loop: generate, let the environment answer, append both, until done or out of room.

    With L the conversation's length in tokens and M = ``max_length``, each turn may generate M - L tokens; the
    episode ends when ``step`` says done, when no room is left, or (``truncated``) when a turn hit its budget.
    The episode's reward is the sum of the steps' rewards: R = sum_t r_t; its score the last step's ``scores``
    (R when no step gave one).
    """

    def __init__(self, agent_instance_cls):
        if not (isinstance(agent_instance_cls, type) and issubclass(agent_instance_cls, AgentInstanceBase)):
            raise TypeError(f"{agent_instance_cls!r} must be a subclass of AgentInstanceBase")
        self.agent_instance_cls = agent_instance_cls

    async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None):
        agent = self.agent_instance_cls()
        reset = await agent.reset({"observation": prompt, "label": label})
        observation_text = reset["observation"] if isinstance(reset, dict) else prompt
        tokens = _encode(hf_tokenizer, observation_text)
        log_probs = [0.0] * len(tokens)
        ranges: list[tuple[int, int]] = []
        total, scores, extra_logs, truncated = 0.0, None, {}, False
        while True:
            room = max_length - len(tokens)
            if room <= 0:
                break
            params = copy.deepcopy(sampling_params)
            params.max_tokens = room
            output = (await llm_engine.generate(list(tokens), params)).outputs[0]
            action = list(output.token_ids)
            truncated = output.finish_reason == "length"
            ranges.append((len(tokens), len(tokens) + len(action)))
            log_probs += [entry[token].logprob for token, entry in zip(action, output.logprobs or [], strict=False)]
            log_probs += [0.0] * (len(tokens) + len(action) - len(log_probs))
            tokens += action
            result = await agent.step(
                {
                    "observation_text": observation_text,
                    "action_text": output.text,
                    "label": label,
                    "sampling_params": params,
                }
            )
            total += as_number(result.get("rewards"), "step()['rewards']")
            if result.get("scores") is not None:
                scores = as_number(result["scores"], "step()['scores']")
            extra_logs = result.get("extra_logs") or extra_logs
            feedback = result.get("environment_feedback") or ""
            if result.get("environment_images"):
                raise AgentError(
                    "train.agent_func_path: step() returned environment_images: images from the environment are "
                    "not supported yet (text feedback is)"
                )
            feedback_tokens = _encode(hf_tokenizer, feedback) if feedback else []
            observation_text = observation_text + output.text + feedback
            tokens += feedback_tokens
            log_probs += [0.0] * len(feedback_tokens)
            if result.get("sampling_params") is not None:
                sampling_params = result["sampling_params"]
            if result.get("done"):
                break
        return {
            "prompt": prompt,
            "label": label,
            "images": images,
            "observation_tokens": tokens,
            "action_ranges": ranges,
            "rollout_log_probs": log_probs,
            "reward": total,
            "scores": total if scores is None else scores,
            "truncated": truncated,
            "extra_logs": extra_logs,
        }
