"""Helpers only the tests (and bench/streamed_rewards.py) use, kept out of the package.

- :func:`distribute_requests`, :func:`generate_on_engines`, :func:`call_engines`: requests spread over engine
  actors in contiguous shards and gathered in order; one method called on every engine.
- :func:`generate`: every output of a batch of encoded prompts, grouped by prompt in prompt order (the
  driver's :func:`openrlhf.trainer.experience_maker.generate_pieces`, gathered).
- :func:`summarize_metrics`: first, last, min and max of each numeric key of metrics.jsonl records.
- :func:`find_free_port`, :func:`local_ip`: an address for a process group (a weight-sync group).
- :func:`wait_for_session_processes`: the processes of a Ray session, once at least ``count`` run.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from openrlhf.rollout.base import GenerationOutput, GenerationRequest, SamplingParams
from openrlhf.rollout.dispatch import engine_params
from openrlhf.utils.actor_calls import wait_for
from openrlhf.workers.distributed import free_port, node_ip

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


def generate_on_engines(
    engines: Sequence[Any], requests: Sequence[GenerationRequest], params: SamplingParams
) -> list[list[GenerationOutput]]:
    """Run ``generate`` on every engine (Ray actor handles) over its shard; outputs in request order."""
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
    return wait_for([getattr(engine, method).remote(*args, **kwargs) for engine in engines])


def generate(engines: list, prompts: list, params: SamplingParams) -> list[GenerationOutput]:
    """All outputs of ``prompts`` (EncodedPrompt), grouped by prompt in prompt order (``generate_pieces`` gathered)."""
    from openrlhf.trainer.experience_maker import generate_pieces

    per_prompt: list[list[GenerationOutput] | None] = [None] * len(prompts)
    for piece in generate_pieces(engines, prompts, params):
        for index, outputs in piece:
            per_prompt[index] = outputs
    missing = [i for i, outs in enumerate(per_prompt) if outs is None]
    if missing:
        raise RuntimeError(f"generate: the engines returned nothing for prompts {missing[:10]}")
    return [out for outs in per_prompt for out in outs]  # type: ignore[union-attr]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def summarize_metrics(records: Iterable[Mapping[str, Any]], keys: Iterable[str] | None = None) -> dict[str, Any]:
    """First, last, min and max of each numeric key over the steps where it was logged.

    ``{"steps": number of records, "last_step": N, "<key>": {"first", "last", "min", "max"}}``.
    """
    records = list(records)
    wanted = None if keys is None else set(keys)
    series: dict[str, list[float]] = {}
    for record in records:
        for key, value in record.items():
            if key == "step" or (wanted is not None and key not in wanted):
                continue
            if (number := _number(value)) is not None:
                series.setdefault(key, []).append(number)
    summary: dict[str, Any] = {"steps": len(records), "last_step": records[-1]["step"] if records else None}
    for key, values in series.items():
        summary[key] = {"first": values[0], "last": values[-1], "min": min(values), "max": max(values)}
    return summary


def find_free_port() -> int:
    """A free TCP port on this machine (all interfaces)."""
    return free_port("")


def local_ip() -> str:
    """This node's address as Ray sees it; loopback without Ray."""
    return node_ip()


def wait_for_session_processes(session_dir: str | os.PathLike[str], count: int, timeout_s: float = 30.0) -> list:
    """Wait until at least ``count`` processes work in ``session_dir``; returns them."""
    from openrlhf.trainer.local_cluster import session_processes

    deadline = time.monotonic() + timeout_s
    while True:
        procs = session_processes(session_dir)
        if len(procs) >= count or time.monotonic() > deadline:
            return procs
        time.sleep(0.2)
