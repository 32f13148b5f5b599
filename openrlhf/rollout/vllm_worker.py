"""The vLLM worker extension: weight receiving inside each vLLM GPU worker (one per tensor-parallel rank).

vLLM mixes this class into its worker when the engine is built with
``worker_extension_cls="openrlhf.rollout.vllm_worker.WeightSyncWorkerExtension"``; the engine calls its
methods on every worker with ``LLM.collective_rpc(name, args=...)``. Inside a worker, ``self`` also has
vLLM's ``model_runner`` (whose ``model.load_weights`` takes Hugging Face names and shards each full
tensor for tensor parallelism), ``device`` and ``rank``.

Nothing here imports vLLM: the logic is plain torch, and the tests run it on CPU with a real gloo group.
"""

from __future__ import annotations

from typing import Any

import torch

from openrlhf.rollout.weight_sync import (
    WeightMeta,
    create_sync_group,
    device_uuid,
    dtype_from_name,
    rebuild_shared_tensor,
)


def worker_sync_rank(rank_offset: int, worker_rank: int) -> int:
    """Rank of a vLLM worker in the weight-sync group: its engine's first rank plus its TP rank."""
    return int(rank_offset) + int(worker_rank)


def pick_ipc_handles(handles_by_device: dict[str, Any], device_key: str) -> Any:
    """The handles a colocated policy rank made on this worker's GPU (keyed by GPU UUID)."""
    if device_key not in handles_by_device:
        raise KeyError(
            f"update_weights_from_ipc: no handles for GPU {device_key}; got handles for {sorted(handles_by_device)}"
        )
    return handles_by_device[device_key]


class WeightSyncWorkerExtension:
    """Methods vLLM adds to its workers: join the sync group, receive weights, load shared (IPC) weights."""

    _weight_sync_group = None

    def _worker_rank(self) -> int:
        rank = getattr(self, "rank", None)
        if rank is None:
            import torch.distributed as dist

            rank = dist.get_rank() if dist.is_initialized() else 0
        return int(rank)

    def _worker_device(self) -> torch.device:
        device = getattr(self, "device", None)
        return torch.device(device) if device is not None else torch.device("cpu")

    def _load(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        self.model_runner.model.load_weights(weights=weights)

    def init_weight_sync_group(
        self,
        master_address: str,
        master_port: int,
        rank_offset: int,
        world_size: int,
        group_name: str,
        backend: str = "nccl",
        timeout_s: float = 600.0,
    ) -> int:
        """Join the policy's sync group as rank ``rank_offset + this worker's rank``; returns that rank."""
        rank = worker_sync_rank(rank_offset, self._worker_rank())
        device = self._worker_device() if backend == "nccl" else torch.device("cpu")
        self._weight_sync_group = create_sync_group(
            master_address, master_port, rank, world_size, group_name, backend, device=device, timeout_s=timeout_s
        )
        return rank

    @torch.no_grad()
    def receive_weights(self, meta: WeightMeta) -> int:
        """Receive each broadcast from policy rank 0 and hand it to vLLM's ``load_weights``, one at a time."""
        group = self._weight_sync_group
        if group is None:
            raise RuntimeError("receive_weights: call init_weight_sync_group on the workers first")
        target = self._worker_device()
        for name, dtype, shape in meta:
            buf = torch.empty(tuple(shape), dtype=dtype_from_name(dtype), device=group.device)
            group.broadcast(buf, src=0)
            self._load([(name, buf.to(target))])
            del buf
        return len(meta)

    @torch.no_grad()
    def load_named_weights(self, named_tensors: list[tuple[str, torch.Tensor]]) -> int:
        """The object-store path: full tensors handed over by the engine process."""
        target = self._worker_device()
        for name, tensor in named_tensors:
            self._load([(name, tensor.to(target))])
        return len(named_tensors)

    @torch.no_grad()
    def update_weights_from_ipc(self, handles_by_device: dict[str, list[tuple[str, Any]]]) -> int:
        """Colocated: open the tensors a policy rank shares on this GPU (CUDA IPC) and load them."""
        device = self._worker_device()
        key = device_uuid(device)
        handles = pick_ipc_handles(handles_by_device, key)
        index = device.index if device.type == "cuda" else None
        for name, handle in handles:
            self._load([(name, rebuild_shared_tensor(handle, index))])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return len(handles)
