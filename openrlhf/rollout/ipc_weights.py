"""Colocated weight sync (the hybrid engine): the policy shares its weights with an engine on the same device.

Policy rank and rollout engine sit on one device (``train.colocate_all``), so a broadcast between them is
impossible (NCCL refuses two ranks on one GPU: "Duplicate GPU detected") and a copy through the object
store is wasteful. Instead each policy rank packs a bucket of parameters into one flat byte buffer on its
own device and hands out a handle to it; the engine opens the buffer in its own process and loads views
of it, without a copy through the host:

    policy rank r:  buffer = concat(aligned bytes of p_1 .. p_k)          (on the rank's device)
                    payload = {"device": uuid(device), "handle": share(buffer), "meta": [(name, dtype, shape, offset)]}
    driver:         by_device = {payload["device"]: payload for every rank}
    engine worker:  views = open_ipc_weights(by_device[uuid(own device)]);  model.load_weights(views)

``share`` is a CUDA IPC handle on a GPU (``torch.multiprocessing.reductions.reduce_tensor``) and a
shared-memory file on the CPU (``UntypedStorage._share_filename_cpu_``), so the same code path runs in the
CPU test suite. Parameters go in buckets of at most ``bucket_bytes``: at most one bucket of gathered
(ZeRO-3) weights exists at a time. The sender keeps the buffer alive until the driver says every engine
has loaded it (:meth:`IpcSender.release`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

ALIGN_BYTES = 256  # every tensor starts at a multiple of this, so any dtype view of the buffer is aligned
DEFAULT_BUCKET_BYTES = 512 * 1024 * 1024

# (name, dtype name, shape, byte offset in the buffer): plain values that survive any RPC encoder.
IpcMeta = list[tuple[str, str, list[int], int]]


def device_uuid(device: torch.device | str) -> str:
    """A GPU's UUID (the same in every process, whatever CUDA_VISIBLE_DEVICES says); "cpu" for the CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return "cpu"
    return str(torch.cuda.get_device_properties(device).uuid)


def _aligned(n: int) -> int:
    return (n + ALIGN_BYTES - 1) // ALIGN_BYTES * ALIGN_BYTES


def plan_buckets(sizes: list[tuple[str, int]], bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> list[list[str]]:
    """Split named tensors of ``nbytes`` into consecutive buckets of at most ``bucket_bytes`` (aligned sizes).

    A tensor larger than a bucket gets a bucket of its own. Order is kept: bucket i holds names
    ``sizes[a_i : a_{i+1}]``.
    """
    if bucket_bytes < 1:
        raise ValueError(f"bucket_bytes={bucket_bytes} must be >= 1")
    buckets: list[list[str]] = []
    current: list[str] = []
    used = 0
    for name, nbytes in sizes:
        size = _aligned(int(nbytes))
        if current and used + size > bucket_bytes:
            buckets.append(current)
            current, used = [], 0
        current.append(name)
        used += size
    if current:
        buckets.append(current)
    return buckets


def _share(buffer: torch.Tensor) -> tuple[str, Any]:
    if buffer.is_cuda:
        from torch.multiprocessing.reductions import reduce_tensor

        return "cuda_ipc", reduce_tensor(buffer)
    manager, handle, size = buffer.untyped_storage()._share_filename_cpu_()
    return "cpu_shm", (manager, handle, int(size))


@dataclass
class IpcSender:
    """One policy rank's side: packs buckets and keeps each shared buffer alive until released."""

    device: torch.device
    _alive: list[torch.Tensor] = field(default_factory=list)

    def pack(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> dict[str, Any]:
        """Copy the tensors into one flat shared buffer on ``device``; returns the payload an engine opens."""
        items = [(name, t.detach()) for name, t in named_tensors]
        meta: IpcMeta = []
        offset = 0
        for name, t in items:
            meta.append((name, str(t.dtype).removeprefix("torch."), list(t.shape), offset))
            offset += _aligned(t.numel() * t.element_size())
        buffer = torch.empty(max(offset, ALIGN_BYTES), dtype=torch.uint8, device=self.device)
        for (_name, t), (_, _, _, start) in zip(items, meta, strict=True):
            nbytes = t.numel() * t.element_size()
            view = buffer[start : start + nbytes].view(t.dtype).view(t.shape)
            view.copy_(t.to(self.device))
        if buffer.is_cuda:
            torch.cuda.synchronize(self.device)
        kind, handle = _share(buffer)
        self._alive.append(buffer)
        return {"device": device_uuid(self.device), "kind": kind, "handle": handle, "meta": meta}

    def release(self) -> int:
        """Drop the buffers (every engine has loaded them); returns how many were held."""
        held = len(self._alive)
        self._alive.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return held


def _open_buffer(payload: dict[str, Any], device_index: int | None) -> torch.Tensor:
    kind, handle = payload["kind"], payload["handle"]
    if kind == "cpu_shm":
        manager, name, size = handle
        storage = torch.UntypedStorage._new_shared_filename_cpu(manager, name, int(size))
        return torch.empty(0, dtype=torch.uint8).set_(storage)
    if kind == "cuda_ipc":
        func, args = handle
        args = list(args)
        if device_index is not None:
            args[_CUDA_REBUILD_DEVICE_ARG] = device_index
        return func(*args)
    raise ValueError(f"IPC weights: unknown handle kind {kind!r} (expected 'cuda_ipc' or 'cpu_shm')")


# Position of the device index in the argument tuple torch's rebuild_cuda_tensor takes: processes number
# their GPUs differently when CUDA_VISIBLE_DEVICES differs, so the receiver puts in its own index.
_CUDA_REBUILD_DEVICE_ARG = 6


def pick_payload(by_device: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The payload a colocated policy rank made on this process's device (keyed by device UUID)."""
    key = device_uuid(device)
    if key not in by_device:
        raise KeyError(f"IPC weights: no payload for device {key}; the policy shared {sorted(by_device)}")
    return by_device[key]


def open_ipc_weights(payload: dict[str, Any], device_index: int | None = None) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) views into the shared buffer of ``payload``; valid while the sender holds it."""
    buffer = _open_buffer(payload, device_index)
    out = []
    for name, dtype, shape, start in payload["meta"]:
        dt = getattr(torch, str(dtype))
        nbytes = int(torch.Size(shape).numel()) * torch.empty(0, dtype=dt).element_size()
        out.append((name, buffer[int(start) : int(start) + nbytes].view(dt).view(tuple(shape))))
    return out
