"""Cluster resources for the planner: parsed from ``NODESxGPUSxGB`` or read from Ray.

The dataclass and the parser are pure; :func:`cluster_from_ray` and :func:`local_cluster` import Ray or
torch lazily. Memory is in GB = 10^9 bytes throughout the planner (``1x8x80`` means 80 GB GPUs).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# Used when Ray reports GPUs but neither torch nor the accelerator type tells their memory.
DEFAULT_GPU_MEMORY_GB = 80.0

# Ray's ``accelerator_type:<name>`` node resource -> memory per GPU in GB (vendor figures). Ambiguous names
# (A100 comes in 40 and 80 GB, V100 in 16 and 32 GB) take the larger size and add a note; Ray's own
# ``A100-40G`` / ``A100-80G`` labels, when a cluster sets them, are exact.
ACCELERATOR_MEMORY_GB: dict[str, float] = {
    "H100": 80.0,
    "H200": 141.0,
    "H20": 96.0,
    "H800": 80.0,
    "A100-80G": 80.0,
    "A100-40G": 40.0,
    "A100": 80.0,
    "A800": 80.0,
    "A10G": 24.0,
    "L4": 24.0,
    "L40S": 48.0,
    "V100": 32.0,
    "T4": 16.0,
    "B200": 180.0,
    "B300": 288.0,
    "GB200": 186.0,
    "GB300": 288.0,
    "RTX-PRO-6000": 96.0,
    "AMD-Instinct-MI300X-OAM": 192.0,
    "AMD-Instinct-MI325X-OAM": 256.0,
}
_AMBIGUOUS = {"A100": "40 or 80", "V100": "16 or 32"}


@dataclass(frozen=True)
class ClusterSpec:
    """What the planner places roles on.

    ``gpus_per_node`` = 0 is a CPU-only cluster: bundles are then checked against logical CPUs and memory
    is not checked. ``cpus`` is the total of logical CPUs (0: unknown, not checked). ``gpus_by_node`` /
    ``cpus_by_node`` describe a cluster whose nodes differ (as Ray reports it: often a GPU-less head node);
    empty means every node has ``gpus_per_node`` GPUs and ``cpus / nodes`` CPUs.
    """

    nodes: int
    gpus_per_node: int
    gpu_memory_gb: float
    cpus: float = 0.0
    gpus_by_node: tuple[int, ...] = ()
    cpus_by_node: tuple[float, ...] = ()
    source: str = "plan.cluster"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"cluster: nodes must be >= 1, got {self.nodes}")
        if self.gpus_per_node < 0 or self.cpus < 0:
            raise ValueError("cluster: GPU and CPU counts must not be negative")
        if self.gpus_per_node > 0 and self.gpu_memory_gb <= 0:
            raise ValueError(f"cluster: GPUs need a memory size > 0 GB, got {self.gpu_memory_gb}")
        for name, values in (("gpus_by_node", self.gpus_by_node), ("cpus_by_node", self.cpus_by_node)):
            if values and len(values) != self.nodes:
                raise ValueError(f"cluster: {name} has {len(values)} entries for {self.nodes} nodes")

    @property
    def has_gpus(self) -> bool:
        return self.total_gpus > 0

    @property
    def total_gpus(self) -> int:
        return sum(self.node_gpus())

    def node_gpus(self) -> list[int]:
        return list(self.gpus_by_node) if self.gpus_by_node else [self.gpus_per_node] * self.nodes

    def node_cpus(self) -> list[float]:
        """Logical CPUs per node; zeros when unknown."""
        if self.cpus_by_node:
            return list(self.cpus_by_node)
        return [self.cpus / self.nodes] * self.nodes

    def describe(self) -> str:
        """``1 node x 8 GPUs``, ``2 nodes x 8 GPUs``, ``3 nodes with 0+8+8 GPUs``, ``1 node x 0 GPUs``."""
        gpus = self.node_gpus()
        nodes = f"{self.nodes} node{'s' if self.nodes != 1 else ''}"
        if not any(gpus):
            return f"{self.nodes} CPU-only node{'s' if self.nodes != 1 else ''}"
        if len(set(gpus)) == 1:
            return f"{nodes} x {gpus[0]} GPU{'s' if gpus[0] != 1 else ''}"
        return f"{nodes} with {'+'.join(str(g) for g in gpus)} GPUs"

    def summary(self) -> str:
        parts = [self.describe()]
        if self.has_gpus:
            parts.append(f"{self.gpu_memory_gb:g} GB each")
        if self.cpus:
            parts.append(f"{self.cpus:g} logical CPUs")
        return ", ".join(parts) + f" (from {self.source})"


def parse_cluster_spec(text: str) -> ClusterSpec:
    """``NODESxGPUSxGB[xCPUS]`` -> :class:`ClusterSpec`, e.g. ``1x8x80`` (1 node, 8 GPUs of 80 GB each).

    GPUS = 0 is a CPU-only cluster (GB is then ignored); the optional CPUS is logical CPUs per node, checked
    against the bundles' ``train.cpus_per_worker`` when given.
    """
    raw = str(text).strip()
    usage = "expected NODESxGPUSxGB[xCPUS], e.g. 1x8x80 (1 node, 8 GPUs of 80 GB) or 2x0x0x16 (2 CPU nodes)"
    parts = raw.lower().split("x")
    if not raw or len(parts) not in (3, 4):
        raise ValueError(f"plan.cluster {raw!r}: {usage}")
    names = ("NODES", "GPUS", "GB", "CPUS")
    values: list[float] = []
    for name, part in zip(names, parts, strict=False):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"plan.cluster {raw!r}: {name} is {part!r}, not a number; {usage}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"plan.cluster {raw!r}: {name} must be a finite number >= 0, got {part!r}")
        if name in ("NODES", "GPUS") and value != int(value):
            raise ValueError(f"plan.cluster {raw!r}: {name} must be a whole number, got {part!r}")
        values.append(value)
    nodes, gpus, gb = int(values[0]), int(values[1]), values[2]
    if nodes < 1:
        raise ValueError(f"plan.cluster {raw!r}: NODES must be at least 1")
    if gpus > 0 and gb <= 0:
        raise ValueError(f"plan.cluster {raw!r}: GB (memory per GPU) must be > 0 when there are GPUs")
    cpus_per_node = values[3] if len(values) == 4 else 0.0
    return ClusterSpec(
        nodes=nodes,
        gpus_per_node=gpus,
        gpu_memory_gb=gb if gpus else 0.0,
        cpus=cpus_per_node * nodes,
        source=f"plan.cluster {raw}",
    )


def gpu_memory_from_accelerators(types: Iterable[str]) -> tuple[float | None, list[str]]:
    """Memory per GPU (GB) from Ray's accelerator type names, and notes; None when no name is known.

    With several types the smallest memory is used (a plan must fit on every GPU).
    """
    known: list[float] = []
    notes: list[str] = []
    for name in sorted(set(types)):
        if name in ACCELERATOR_MEMORY_GB:
            known.append(ACCELERATOR_MEMORY_GB[name])
            if name in _AMBIGUOUS:
                notes.append(
                    f"GPU type {name} comes with {_AMBIGUOUS[name]} GB; assumed {ACCELERATOR_MEMORY_GB[name]:g} GB "
                    "(set --plan.cluster NODESxGPUSxGB to plan for the other)"
                )
        else:
            notes.append(f"GPU type {name!r} has no known memory size")
    return (min(known) if known else None), notes


def cluster_from_ray_nodes(
    nodes: Iterable[Mapping[str, Any]], torch_gpu_memory_gb: float | None = None, source: str = "Ray"
) -> ClusterSpec:
    """A :class:`ClusterSpec` from ``ray.nodes()`` entries (pure: pass the list in).

    GPU memory, in order: ``torch_gpu_memory_gb`` (a GPU visible to the driver), Ray's
    ``accelerator_type:<name>`` resources (:data:`ACCELERATOR_MEMORY_GB`), else
    :data:`DEFAULT_GPU_MEMORY_GB` with a note.
    """
    alive = [n for n in nodes if n.get("Alive", n.get("alive", True))]
    if not alive:
        raise ValueError("Ray reports no live node")
    gpus = tuple(int(n.get("Resources", {}).get("GPU", 0)) for n in alive)
    cpus = tuple(float(n.get("Resources", {}).get("CPU", 0)) for n in alive)
    types = [
        key.split(":", 1)[1] for n in alive for key in n.get("Resources", {}) if key.startswith("accelerator_type:")
    ]
    notes: list[str] = []
    memory = 0.0
    if sum(gpus):
        if torch_gpu_memory_gb:
            memory = float(torch_gpu_memory_gb)
        else:
            found, notes = gpu_memory_from_accelerators(types)
            if found is None:
                memory = DEFAULT_GPU_MEMORY_GB
                notes.append(
                    f"GPU memory unknown: assumed {DEFAULT_GPU_MEMORY_GB:g} GB per GPU "
                    "(set --plan.cluster NODESxGPUSxGB to plan for another size)"
                )
            else:
                memory = found
    return ClusterSpec(
        nodes=len(alive),
        gpus_per_node=max(gpus),
        gpu_memory_gb=memory,
        cpus=sum(cpus),
        gpus_by_node=gpus if len(set(gpus)) > 1 else (),
        cpus_by_node=cpus,
        source=source,
        notes=tuple(notes),
    )


def _torch_gpu_memory_gb() -> float | None:
    """Total memory of the driver's first visible CUDA device in GB, or None."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 1e9


def cluster_from_ray() -> ClusterSpec:
    """The connected Ray cluster's resources (``ray.nodes()``; totals cross-checked with ``ray.cluster_resources()``)."""
    import ray

    spec = cluster_from_ray_nodes(ray.nodes(), torch_gpu_memory_gb=_torch_gpu_memory_gb())
    total = ray.cluster_resources()
    if int(total.get("GPU", 0)) != spec.total_gpus:
        note = f"ray.cluster_resources() reports {total.get('GPU', 0)} GPUs, ray.nodes() {spec.total_gpus}"
        spec = replace(spec, notes=(*spec.notes, note))
    return spec


def local_cluster(required_cpus: int) -> ClusterSpec:
    """The local cluster ``init_ray`` would start here, without starting it.

    Logical CPUs = max(required_cpus, os.cpu_count()) as ``openrlhf.trainer.ray_setup.init_ray`` declares;
    GPUs = the CUDA devices torch sees.
    """
    cpus = float(max(required_cpus, os.cpu_count() or 1))
    gpus, memory = 0, 0.0
    try:
        import torch

        if torch.cuda.is_available():
            gpus = torch.cuda.device_count()
            memory = _torch_gpu_memory_gb() or DEFAULT_GPU_MEMORY_GB
    except ImportError:  # pragma: no cover
        pass
    return ClusterSpec(nodes=1, gpus_per_node=gpus, gpu_memory_gb=memory, cpus=cpus, source="this machine (local Ray)")
