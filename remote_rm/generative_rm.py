"""Asking the generative reward model behind ``generative_rm`` (the score itself: :mod:`remote_rm.rewards.generative`).

The reward model is any OpenAI-compatible chat server (``openrlhf-serve``, vLLM's server, a hosted API) set in
the config's ``generative_rm`` section. Calls go through :class:`remote_rm.judge.JudgeClient`, the consistency
judge's client, with this endpoint's own settings: a timeout per call, ``max_retries`` retries with backoff, at
most ``concurrency`` calls at once, a circuit breaker, and ``request_budget_s`` per request. Each order of each
sample is one ask; an ask that fails, runs past the budget or is skipped by the open breaker gives that order
the fallback, counted (``generative_rm_failures`` / ``generative_rm_skipped`` in extra_logs and /metrics), and
the request is still answered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from remote_rm.judge import JudgeClient, Verdict
from remote_rm.pairwise import preference_verdict
from remote_rm.rewards import generative
from remote_rm.settings import GenerativeRMSettings


@dataclass
class Comparison:
    """One sample to score: the policy's response, the reference answer, the question, the component's params."""

    response: str
    reference: str
    question: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ComparisonResult:
    value: float
    calls: int = 0  # tries sent to the reward model (a late order counts one)
    failures: int = 0  # orders that got the fallback: failed, over the budget, or no verdict
    skipped: int = 0  # orders not asked: the circuit breaker was open


class GenerativeRM:
    """The ``generative_rm`` component's reward model; ``await score_many(...)`` never raises."""

    def __init__(self, settings: GenerativeRMSettings) -> None:
        self.settings = settings
        self.client = JudgeClient(settings, name="generative_rm")

    async def score_many(self, comparisons: list[Comparison], budget_s: float) -> list[ComparisonResult]:
        """Every comparison's score; the asks run concurrently, and those not done within ``budget_s`` (at most
        ``request_budget_s``) get the fallback."""
        plans: list[float | list[tuple[str, asyncio.Future]]] = []
        for c in comparisons:
            answer_only = c.params.get("answer_only", True)
            policy = generative.policy_text(c.response, answer_only)
            fixed = generative.decided_without_asking(policy, c.reference)
            if fixed is not None:
                plans.append(fixed)
                continue
            prompts = generative.comparison_prompts(
                c.question, policy, c.reference, c.params.get("orders", "both"), c.params.get("max_chars", 4000)
            )
            plans.append(
                [
                    (order, asyncio.ensure_future(self.client.ask(p, preference_verdict, "1 or 2")))
                    for order, p in prompts
                ]
            )
        tasks = [task for plan in plans if isinstance(plan, list) for _, task in plan]
        late: set = set()
        if tasks:
            budget_s = min(budget_s, self.settings.request_budget_s)
            _, late = await asyncio.wait(tasks, timeout=budget_s) if budget_s > 0 else (set(), set(tasks))
            for task in late:
                task.cancel()
        return [
            ComparisonResult(plan) if isinstance(plan, float) else self._result(plan, late, c.params)
            for plan, c in zip(plans, comparisons, strict=True)
        ]

    def _result(self, plan: list[tuple[str, asyncio.Future]], late: set, params: dict[str, Any]) -> ComparisonResult:
        result = ComparisonResult(0.0)
        wins: list[float | None] = []
        for order, task in plan:
            if task in late or task.cancelled():
                asked: Verdict = Verdict(None, False, 1, "over the request's budget")
            else:
                asked = task.result()
            result.calls += asked.calls
            if asked.skipped:
                result.skipped += 1
            elif not asked.ok:
                result.failures += 1
            wins.append(generative.policy_win(order, asked.verdict) if asked.ok else None)
        result.value = generative.generative_score(wins, self.settings.fallback, params.get("ties_win", False))
        return result

    async def close(self) -> None:
        await self.client.close()
