"""Driver-side helpers: spread requests over rollout engines (Ray actors) and gather the outputs in order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

from openrlhf.rollout.base import GenerationOutput, GenerationRequest, SamplingParams

T = TypeVar("T")


def distribute_requests(requests: Sequence[T], num_engines: int) -> list[list[T]]:
    """Split requests into ``num_engines`` contiguous shards whose sizes differ by at most one.

    Contiguous shards keep each prompt's n samples on one engine (prefix cache) and make the gather a
    plain concatenation. Engines past the number of requests get empty shards.
    """
    if num_engines < 1:
        raise ValueError(f"distribute_requests: num_engines={num_engines} must be >= 1")
    base, extra = divmod(len(requests), num_engines)
    shards, start = [], 0
    for engine in range(num_engines):
        size = base + (1 if engine < extra else 0)
        shards.append(list(requests[start : start + size]))
        start += size
    return shards


def engine_params(params: SamplingParams, engine_index: int) -> SamplingParams:
    """Each engine gets its own seed (seed + index) so engines do not draw the same random stream."""
    if params.seed is None:
        return params
    return replace(params, seed=int(params.seed) + engine_index)


def generate_on_engines(
    engines: Sequence[Any], requests: Sequence[GenerationRequest], params: SamplingParams
) -> list[list[GenerationOutput]]:
    """Run ``generate`` on every engine (Ray actor handles) over its shard; outputs in request order."""
    import ray

    if not engines:
        raise ValueError("generate_on_engines: no rollout engines")
    shards = distribute_requests(list(requests), len(engines))
    refs = [
        engine.generate.remote(shard, engine_params(params, index))
        for index, (engine, shard) in enumerate(zip(engines, shards, strict=True))
        if shard
    ]
    outputs: list[list[GenerationOutput]] = []
    for result in ray.get(refs):
        outputs.extend(result)
    if len(outputs) != len(requests):
        raise RuntimeError(f"generate_on_engines: {len(outputs)} results for {len(requests)} requests")
    return outputs


def call_engines(engines: Sequence[Any], method: str, *args: Any, **kwargs: Any) -> list[Any]:
    """Call one method on every engine actor and wait for all (sleep, wake_up, update_weights, ...)."""
    import ray

    return ray.get([getattr(engine, method).remote(*args, **kwargs) for engine in engines])
