"""The seeds that give every engine and every prompt of a step its own random stream.

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
from dataclasses import replace

from openrlhf.rollout.base import SamplingParams

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
