"""Generation and scoring overlapped: a prompt's group of n responses is scored as soon as all n are generated,
while the engines go on with the other prompts.

With G the generation time of a batch and R_k the time to score the k-th piece of finished groups, the first
half of a step takes

    one after the other:   G + sum_k R_k
    streamed:              about G + R_last   (while each R_k fits into the generation still to come)

The engines yield finished groups (``RolloutEngine.generate_stream``: after each ``generate_batch_size`` chunk
for the HF engine, after each engine step for vLLM); one scoring thread scores them in the order they arrive,
one call at a time, as the reward source was called before (the HTTP client spreads each call over its URLs
and batches itself; a ``reward_func`` file gets whole groups). Rewards are per sample and every call holds
whole groups, so they are those of scoring the batch at once for any reward that looks at a sample or at its
group only. A scoring failure is raised as soon as it is seen; the generation still running is abandoned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from openrlhf.rollout.base import GenerationOutput, SamplingParams
from openrlhf.rollout.prompt_encoder import EncodedPrompt, PromptEncoder
from openrlhf.trainer.experience_maker import Rollout, generate_pieces, score_groups
from openrlhf.trainer.reward_client import RewardResult, merge_results


@dataclass
class ScoredRollout:
    """A rollout with its rewards, and when its generation and each scoring call ran (perf_counter)."""

    rollout: Rollout
    generation_window: tuple[float, float]
    reward_windows: list[tuple[float, float]] = field(default_factory=list)

    @property
    def reward_wait(self) -> float:
        """Scoring time the step waited for after generation ended (the part not hidden behind it)."""
        end = max((w[1] for w in self.reward_windows), default=self.generation_window[1])
        return max(0.0, end - self.generation_window[1])

    @property
    def reward_busy(self) -> float:
        """All scoring time, hidden or not: sum_k R_k."""
        return sum(end - start for start, end in self.reward_windows)


def generate_and_score(
    engines: list,
    prompts: list[EncodedPrompt],
    params: SamplingParams,
    reward_source,
    encoder: PromptEncoder,
    *,
    on_generated: Callable[[], None] | None = None,
) -> ScoredRollout:
    """Generate ``params.n`` responses per prompt on ``engines`` and score each group as it finishes.

    ``on_generated`` runs once the last response is generated, before waiting for the last scores (the hybrid
    engine puts its engines to sleep there).
    """
    outputs: list[list[GenerationOutput] | None] = [None] * len(prompts)
    windows: list[tuple[float, float]] = []
    scored: list[tuple[list[int], Future]] = []

    def score_piece(indices: list[int]) -> RewardResult:
        start = time.perf_counter()
        try:
            return score_groups(reward_source, encoder, [prompts[i] for i in indices], [outputs[i] for i in indices])
        finally:
            windows.append((start, time.perf_counter()))

    t0 = time.perf_counter()
    pieces = generate_pieces(engines, prompts, params)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reward-scoring") as pool:
        try:
            for piece in pieces:
                for index, group in piece:
                    outputs[index] = group
                indices = [index for index, _ in piece]
                scored.append((indices, pool.submit(score_piece, indices)))
                _raise_first_failure(scored)
        except BaseException:
            pieces.close()  # an in-process engine stops here and lets go of its generation lock
            for _, future in scored:
                future.cancel()
            raise
        t1 = time.perf_counter()
        if on_generated is not None:
            on_generated()
        results = [(indices, future.result()) for indices, future in scored]
    missing = [i for i, group in enumerate(outputs) if group is None]
    if missing:
        raise RuntimeError(f"generate: the engines returned nothing for prompts {missing[:10]}")
    groups: list[list[GenerationOutput]] = outputs  # type: ignore[assignment]
    rollout = Rollout(prompts, [out for group in groups for out in group], params.n)
    _set_rewards_in_prompt_order(rollout, groups, results)
    return ScoredRollout(rollout, (t0, t1), sorted(windows))


def _raise_first_failure(scored: list[tuple[list[int], Future]]) -> None:
    for _, future in scored:
        if future.done() and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]


def _set_rewards_in_prompt_order(
    rollout: Rollout, groups: list[list[GenerationOutput]], results: list[tuple[list[int], RewardResult]]
) -> None:
    """Merge the pieces' answers (in arrival order; extra_logs sample-weighted, see merge_results) and put
    every per-sample value back at its row: row = sum of the group sizes before its prompt + its index."""
    import torch

    starts, row = [], 0
    for group in groups:
        starts.append(row)
        row += len(group)
    order = [starts[i] + j for indices, _ in results for i in indices for j in range(len(groups[i]))]
    merged = merge_results([result for _, result in results])
    if len(merged) != row:
        raise RuntimeError(f"the reward source answered {len(merged)} rewards for {row} responses")

    def in_rows(values: list[float]) -> list[float]:
        placed = [0.0] * row
        for position, value in zip(order, values, strict=True):
            placed[position] = value
        return placed

    rollout.rewards = torch.tensor(in_rows(merged.rewards), dtype=torch.float32)
    rollout.scores = torch.tensor(in_rows(merged.scores), dtype=torch.float32)
    rollout.components = {name: in_rows(values) for name, values in merged.components.items()}
    rollout.extra_logs = merged.extra_logs
