"""Multi-turn rollouts: an agent file's episodes, their turns batched over the run's engines.

``--train.agent_func_path FILE.py`` names an OpenRLHF agent file (it imports ``openrlhf.utils.agent`` and
exports ``AgentExecutor``). For each prompt of a step, n episodes run concurrently in one asyncio loop; every
episode's ``llm_engine.generate(token_ids, sampling_params)`` is collected by a :class:`TurnBatcher`, which sends
the turns waiting at the same time to the engines as one batch (dealt round-robin over them) and hands each
episode its completion in vLLM's shape (``outputs[0].token_ids / .text / .finish_reason / .logprobs``). The
batch goes out when every live episode is waiting for a turn, or ``flush_after_s`` after the first one asked
(an environment that does I/O in ``step`` does not hold the others back).

An episode becomes one :class:`GenerationOutput`: the prompt is the conversation up to the first action, the
response everything after it, and ``loss_mask`` marks the tokens the policy sampled (1) apart from the
environment's (0), which stay in the context but out of the loss. Its reward is the agent's (the sum of the
steps' rewards); no reward service is asked.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openrlhf.rollout.base import GenerationOutput, GenerationRequest, SamplingParams
from openrlhf.rollout.dispatch import derive_seed
from openrlhf.utils.actor_calls import CALL_DEADLINE, CallTimeout
from openrlhf.utils.agent import AgentError, AgentExecutorBase, as_number
from openrlhf.utils.py_files import import_python_file


class AgentFileError(AgentError):
    """The agent file cannot be used; the message names the file and what is wrong."""


def load_agent_executor(path: str | Path) -> AgentExecutorBase:
    """``AgentExecutor()`` of the agent file at ``path``, which must subclass ``AgentExecutorBase``."""
    path = Path(path)
    if path.suffix != ".py" or not path.is_file():
        raise AgentFileError(f"train.agent_func_path: {path} is not a Python file (an OpenRLHF agent file)")
    try:
        module = import_python_file(path, "_openrlhf_agent")
    except Exception as exc:
        raise AgentFileError(f"train.agent_func_path: {path} failed to import: {type(exc).__name__}: {exc}") from exc
    executor_cls = getattr(module, "AgentExecutor", None)
    if not (isinstance(executor_cls, type) and issubclass(executor_cls, AgentExecutorBase)):
        raise AgentFileError(
            f"train.agent_func_path: {path} must define a class AgentExecutor, subclass of "
            "openrlhf.utils.agent.AgentExecutorBase (usually MultiTurnAgentExecutor bound to its AgentInstance)"
        )
    return executor_cls()


@dataclass
class AgentSamplingParams:
    """The sampling params an agent sees, in vLLM's names (``max_tokens``: this turn's budget; ``logprobs``:
    the sampled token's log-prob is returned)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int | None = None
    logprobs: int | None = 1
    seed: int | None = None
    n: int = 1


@dataclass(frozen=True)
class TokenLogprob:
    logprob: float


@dataclass
class TurnCompletion:
    """One sampled turn, as vLLM's ``CompletionOutput``: ``logprobs`` maps each position's token to its log-prob."""

    token_ids: list[int]
    text: str
    finish_reason: str
    logprobs: list[dict[int, TokenLogprob]] = field(default_factory=list)


@dataclass
class TurnOutput:
    """One generate() answer, as vLLM's ``RequestOutput``."""

    prompt_token_ids: list[int]
    outputs: list[TurnCompletion]


def cut_to_budget(output: GenerationOutput, max_tokens: int | None) -> TurnCompletion:
    """The turn's completion with at most ``max_tokens`` tokens; one cut short finishes with "length"."""
    ids, log_probs, finish = list(output.output_token_ids), list(output.log_probs), output.finish_reason
    text = output.text
    if max_tokens is not None and len(ids) > max_tokens:
        ids, log_probs, finish, text = ids[:max_tokens], log_probs[:max_tokens], "length", None
    logprobs = [{token: TokenLogprob(lp)} for token, lp in zip(ids, log_probs, strict=True)]
    return TurnCompletion(ids, text if text is not None else "", finish, logprobs)


class TurnBatcher:
    """The ``llm_engine`` handed to every episode of a rollout: turns asked for together go out as one batch.

    ``generate_batch(requests, params)`` runs a batch (blocking, in a worker thread) and returns one
    :class:`GenerationOutput` per request.
    """

    def __init__(
        self,
        generate_batch: Callable[[list[GenerationRequest], SamplingParams], list[GenerationOutput]],
        decode: Callable[[list[int]], str],
        live: int,
        max_new_tokens: int,
        seed: int | None,
        flush_after_s: float = 0.05,
    ) -> None:
        self._generate_batch = generate_batch
        self._decode = decode
        self.live = live
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.flush_after_s = flush_after_s
        self.waiting: list[tuple[list[int], Any, asyncio.Future]] = []
        self.turns = 0
        self.batches = 0
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None, **_: Any) -> TurnOutput:
        if multi_modal_data:
            raise AgentError("train.agent_func_path: multi-turn image episodes are not supported yet (text turns are)")
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((list(prompt_token_ids), sampling_params, future))
        self._maybe_flush()
        return await future

    def episode_done(self) -> None:
        self.live -= 1
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if self._busy or not self.waiting:
            return
        if len(self.waiting) >= self.live:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_after_s, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self.waiting:
            return
        batch, self.waiting = self.waiting, []
        self._busy = True
        asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[tuple[list[int], Any, asyncio.Future]]) -> None:
        try:
            for group in _groups_by_sampling(batch):
                await self._run_group(group)
        except BaseException as exc:  # every waiting episode gets the engine's error
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        finally:
            self._busy = False
            self._maybe_flush()

    async def _run_group(self, group: list[tuple[list[int], Any, asyncio.Future]]) -> None:
        first = group[0][1]
        budgets = [getattr(p, "max_tokens", None) for _, p, _ in group]
        longest = max((b for b in budgets if b is not None), default=self.max_new_tokens)
        params = SamplingParams(
            n=1,
            temperature=float(getattr(first, "temperature", 1.0)),
            top_p=float(getattr(first, "top_p", 1.0)),
            top_k=int(getattr(first, "top_k", -1) or -1),
            max_new_tokens=max(1, min(longest, self.max_new_tokens)),
            seed=derive_seed(self.seed, "turn_batch", self.batches),
        )
        self.batches += 1
        requests = [GenerationRequest(prompt_text="", prompt_token_ids=ids) for ids, _, _ in group]
        outputs = await asyncio.to_thread(self._generate_batch, requests, params)
        self.turns += len(group)
        for (_, _, future), output, budget in zip(group, outputs, budgets, strict=True):
            completion = cut_to_budget(output, budget)
            if not completion.text:
                completion.text = self._decode(completion.token_ids)
            if not future.done():
                future.set_result(TurnOutput(output.prompt_token_ids, [completion]))


def _groups_by_sampling(batch: list) -> list[list]:
    """Turns that sample alike (temperature, top_p, top_k) go to the engines together."""

    def key(item) -> tuple:
        p = item[1]
        return (getattr(p, "temperature", 1.0), getattr(p, "top_p", 1.0), getattr(p, "top_k", -1))

    return [list(group) for _, group in itertools.groupby(sorted(batch, key=key), key=key)]


@dataclass
class Episode:
    """An executor's result, checked: every token id, the action spans, per-token sampler log-probs, reward."""

    tokens: list[int]
    action_ranges: list[tuple[int, int]]
    log_probs: list[float]
    reward: float
    score: float
    truncated: bool
    extra_logs: dict[str, float]

    @classmethod
    def from_result(cls, result: dict, where: str) -> Episode:
        try:
            tokens = [int(t) for t in result["observation_tokens"]]
            ranges = [(int(a), int(b)) for a, b in result["action_ranges"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentError(f"{where}: execute() must return observation_tokens and action_ranges ({exc})") from exc
        if not ranges:
            raise AgentError(f"{where}: the episode has no action (the prompt left no room to generate?)")
        for a, b in ranges:
            if not 0 <= a <= b <= len(tokens):
                raise AgentError(f"{where}: action range ({a}, {b}) is outside the {len(tokens)} observation tokens")
        log_probs = result.get("rollout_log_probs") or [0.0] * len(tokens)
        if len(log_probs) != len(tokens):
            raise AgentError(f"{where}: {len(log_probs)} rollout_log_probs for {len(tokens)} observation tokens")
        reward = as_number(result.get("reward"), f"{where}: reward")
        score = as_number(result["scores"], f"{where}: scores") if result.get("scores") is not None else reward
        logs = {k: as_number(v, f"{where}: extra_logs[{k!r}]") for k, v in (result.get("extra_logs") or {}).items()}
        return cls(tokens, ranges, [float(x) for x in log_probs], reward, score, bool(result.get("truncated")), logs)

    def generation_output(self, decode: Callable[[list[int]], str]) -> GenerationOutput:
        """The episode as one response: from the first action on, environment tokens masked out."""
        start = self.action_ranges[0][0]
        response = self.tokens[start:]
        mask = [0] * len(response)
        for a, b in self.action_ranges:
            mask[a - start : b - start] = [1] * (b - a)
        return GenerationOutput(
            prompt_token_ids=self.tokens[:start],
            output_token_ids=response,
            text=decode(response),
            log_probs=self.log_probs[start:],
            finish_reason="length" if self.truncated else "stop",
            loss_mask=mask,
        )


@dataclass
class AgentRollout:
    """A step's episodes, grouped by prompt, and what running them took."""

    episodes: list[list[Episode]]
    turns: int
    seconds: float


def run_episodes(
    executor: AgentExecutorBase,
    generate_batch: Callable[[list[GenerationRequest], SamplingParams], list[GenerationOutput]],
    tokenizer,
    prompts: list[tuple[str, Any]],
    params: SamplingParams,
    max_length: int,
) -> AgentRollout:
    """``params.n`` episodes per (prompt text, label), all at once; the turns batched (:class:`TurnBatcher`)."""
    start = time.perf_counter()

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False)

    async def run_all() -> tuple[list[Any], int]:
        batcher = TurnBatcher(generate_batch, decode, len(prompts) * params.n, params.max_new_tokens, params.seed)

        async def one(prompt: str, label: Any) -> Any:
            sampling = AgentSamplingParams(params.temperature, params.top_p, params.top_k, params.max_new_tokens)
            try:
                return await executor.execute(prompt, label, sampling, max_length, tokenizer, batcher, None)
            finally:
                batcher.episode_done()

        jobs = [one(text, label) for text, label in prompts for _ in range(params.n)]
        return await asyncio.gather(*jobs), batcher.turns

    async def within_deadline() -> tuple[list[Any], int]:
        # an environment's step() that never returns must not hang the run: the run's call deadline bounds it
        deadline = CALL_DEADLINE.seconds
        try:
            return await asyncio.wait_for(run_all(), timeout=deadline)
        except TimeoutError:
            raise CallTimeout(
                f"{len(prompts) * params.n} agent episodes did not finish within {deadline:.0f} s (the run's call "
                "deadline): an environment's step() or reset() that never returns?"
            ) from None

    results, turns = asyncio.run(within_deadline())
    episodes = [Episode.from_result(r, f"episode {i} (prompt {i // params.n})") for i, r in enumerate(results)]
    grouped = [episodes[k * params.n : (k + 1) * params.n] for k in range(len(prompts))]
    return AgentRollout(grouped, turns, time.perf_counter() - start)
