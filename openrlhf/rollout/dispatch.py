"""Driver-side helpers: spread requests over rollout engines (Ray actors) and gather the outputs in order,
and the seeds that give every prompt of a step its own random stream.

Seeds. A step has one seed (the driver's ``train.seed * 100003 + step``). Adding small offsets to it (seed +
engine index, + request index) makes streams collide: vLLM gives the j-th of a request's n samples the seed
``request seed + j`` (vllm/v1/engine/parallel_sampling.py, ``ParentRequest._get_child_sampling_params``), so
with "seed + index" request 0's second sample, request 1's first sample and engine 1's first request all
drew the same numbers, and step t + 1 replayed step t shifted by one. Instead every derived seed is a
hash of its parents (:func:`derive_seed`): engine e of a step gets ``derive_seed(step, "engine", e)`` and
request k on that engine ``derive_seed(engine seed, "prompt", k)``. Seeds are 62-bit, so the ranges
``[seed, seed + n)`` vLLM uses for the n samples of different prompts overlap with probability about
``prompts^2 * n / 2^62``, and derived seeds are the same on every rerun (no process-salted ``hash()``).
"""

from __future__ import annotations

import hashlib
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


SEED_BITS = 62  # headroom below int64 for vLLM's "seed + sample index" and torch.Generator.manual_seed


def derive_seed(seed: int | None, kind: str, index: int) -> int | None:
    """A 62-bit seed for child ``index`` of kind ``kind`` ("engine", "prompt") of ``seed``; None stays None.

    blake2b of the three values: stable across processes and Python versions, unrelated for neighbouring
    parents or indices (unlike ``seed + index``), and ``kind`` keeps engine and prompt seeds apart.
    """
    if seed is None:
        return None
    digest = hashlib.blake2b(f"{int(seed)}/{kind}/{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << SEED_BITS) - 1)


def engine_params(params: SamplingParams, engine_index: int) -> SamplingParams:
    """The params engine ``engine_index`` gets for one step: its own seed, derived from the step's.

    The HF engine seeds each ``generate`` call with it; the vLLM engine derives one seed per request from it
    (:func:`openrlhf.rollout.vllm_engine.vllm_sampling_kwargs`), so every prompt has its own stream.
    """
    if params.seed is None:
        return params
    return replace(params, seed=derive_seed(params.seed, "engine", engine_index))


def generate_on_engines(
    engines: Sequence[Any], requests: Sequence[GenerationRequest], params: SamplingParams
) -> list[list[GenerationOutput]]:
    """Run ``generate`` on every engine (Ray actor handles) over its shard; outputs in request order."""
    from openrlhf.workers.in_driver import wait_for

    if not engines:
        raise ValueError("generate_on_engines: no rollout engines")
    shards = distribute_requests(list(requests), len(engines))
    refs = [
        engine.generate.remote(shard, engine_params(params, index))
        for index, (engine, shard) in enumerate(zip(engines, shards, strict=True))
        if shard
    ]
    outputs: list[list[GenerationOutput]] = []
    for result in wait_for(refs):
        outputs.extend(result)
    if len(outputs) != len(requests):
        raise RuntimeError(f"generate_on_engines: {len(outputs)} results for {len(requests)} requests")
    return outputs


def call_engines(engines: Sequence[Any], method: str, *args: Any, **kwargs: Any) -> list[Any]:
    """Call one method on every engine actor and wait for all (sleep, wake_up, update_weights, ...)."""
    from openrlhf.workers.in_driver import wait_for

    return wait_for([getattr(engine, method).remote(*args, **kwargs) for engine in engines])
