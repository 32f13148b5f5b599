"""Pushing policy weights to the rollout engines: a torch.distributed broadcast group, or the Ray object store.

The broadcast path, parameter by parameter from policy rank 0 (the sender) to every engine:

    driver:   addr, port = ray.get(policy_rank0.sync_address.remote())        # node IP + a free port
              meta = weight_meta(...)                                          # [(name, dtype, shape), ...]
              ray.get([policy_rank0 -> create_sync_group_sender(addr, port, 1 + E, "rollout-sync", backend),
                       engine_i.init_weight_sync_group.remote(addr, port, 1 + i, 1 + E, "rollout-sync", backend)])
              ray.get([policy_rank0 -> broadcast_named_tensors(named_tensors, group),
                       engine_i.receive_weights.remote(meta) for every engine])

The group is *stateless*: a ``TCPStore`` hosted by rank 0 and a gloo/NCCL backend built on it directly,
never ``torch.distributed.init_process_group``. The sender already lives in DeepSpeed's default process
group (gloo on CPU, NCCL on GPU); building the sync group this way neither touches nor needs that default
group, and the engines (vLLM workers have their own default group for tensor parallelism) likewise.

The object-store path: ``engine.update_weights.remote(pack_state_dict(named_tensors))`` (put once with
``ray.put`` when several engines take the same weights). Colocated engines take IPC handles instead
(:mod:`openrlhf.rollout.ipc_weights`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

NamedTensors = Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]
# (name, dtype name such as "float32", shape): plain Python values, so any RPC layer can carry them.
WeightMeta = list[tuple[str, str, list[int]]]

DEFAULT_TIMEOUT_S = 600.0


@dataclass
class SyncGroup:
    """One rank's view of a weight-sync group: the backend that runs the collectives, and its store."""

    backend: Any  # torch.distributed.ProcessGroupGloo / ProcessGroupNCCL
    store: Any  # kept alive: rank 0 hosts the TCPStore server
    rank: int
    world_size: int
    name: str
    backend_name: str
    device: torch.device

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> None:
        opts = dist.BroadcastOptions()
        opts.rootRank = src
        opts.rootTensor = 0
        self.backend.broadcast([tensor], opts).wait()

    def barrier(self) -> None:
        flag = torch.zeros(1, device=self.device)
        opts = dist.AllreduceOptions()
        self.backend.allreduce([flag], opts).wait()


def create_sync_group(
    master_address: str,
    master_port: int,
    rank: int,
    world_size: int,
    group_name: str,
    backend: str = "gloo",
    *,
    device: torch.device | str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> SyncGroup:
    """Join (rank > 0) or host (rank 0) a weight-sync group; blocks until all ``world_size`` ranks joined."""
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"weight sync backend {backend!r} is not one of 'gloo', 'nccl'")
    if not 0 <= rank < world_size:
        raise ValueError(f"weight sync group {group_name!r}: rank {rank} outside world of size {world_size}")
    timeout = datetime.timedelta(seconds=timeout_s)
    try:
        store = dist.TCPStore(
            master_address, int(master_port), world_size, is_master=(rank == 0), timeout=timeout, wait_for_workers=False
        )
    except Exception as exc:  # noqa: BLE001 - re-raised with the address that failed
        raise RuntimeError(
            f"weight sync group {group_name!r}: rank {rank} could not reach the store at tcp://{master_address}:"
            f"{master_port}: {exc}"
        ) from exc
    prefixed = dist.PrefixStore(f"openrlhf-weight-sync/{group_name}/", store)
    if backend == "gloo":
        pg = dist.ProcessGroupGloo(prefixed, rank, world_size, timeout)
        dev = torch.device(device) if device is not None else torch.device("cpu")
    else:
        if not torch.cuda.is_available():
            raise RuntimeError(f"weight sync group {group_name!r}: backend 'nccl' needs CUDA; use 'gloo' on CPU")
        options = dist.ProcessGroupNCCL.Options()
        options._timeout = timeout
        pg = dist.ProcessGroupNCCL(prefixed, rank, world_size, options)
        dev = torch.device(device) if device is not None else torch.device("cuda", torch.cuda.current_device())
    group = SyncGroup(pg, store, rank, world_size, group_name, backend, dev)
    group.barrier()  # every rank is connected before the first weight moves
    return group


def create_sync_group_sender(
    master_address: str,
    master_port: int,
    world_size: int,
    group_name: str,
    backend: str = "gloo",
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> SyncGroup:
    """The policy rank-0 side: rank 0 of the sync group, hosting its store at ``master_address:master_port``."""
    return create_sync_group(master_address, master_port, 0, world_size, group_name, backend, timeout_s=timeout_s)


def _items(named_tensors: NamedTensors) -> Iterable[tuple[str, torch.Tensor]]:
    return named_tensors.items() if isinstance(named_tensors, Mapping) else named_tensors


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def dtype_from_name(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    dtype = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"weight meta: {name!r} is not a torch dtype")
    return dtype


def weight_meta(named_tensors: NamedTensors) -> WeightMeta:
    """[(name, dtype name, shape)] in iteration order: what receivers allocate before each broadcast."""
    return [(name, dtype_name(t.dtype), list(t.shape)) for name, t in _items(named_tensors)]


def broadcast_named_tensors(named_tensors_iter: NamedTensors, group: SyncGroup) -> int:
    """Broadcast each tensor from rank 0, one at a time, in the order of :func:`weight_meta`; returns the count.

    The caller gathers ZeRO-3 shards around each yield (``deepspeed.zero.GatheredParameters``), so at most
    one full parameter is materialised at a time. Tensors move to the group's device (CPU for gloo).
    """
    if group.rank != 0:
        raise RuntimeError(f"weight sync group {group.name!r}: only rank 0 sends, this is rank {group.rank}")
    count = 0
    for _name, tensor in _items(named_tensors_iter):
        buf = tensor.detach().to(group.device).contiguous()
        group.broadcast(buf, src=0)
        count += 1
    return count


def receive_named_tensors(meta: WeightMeta, group: SyncGroup) -> Iterator[tuple[str, torch.Tensor]]:
    """Receiver side of :func:`broadcast_named_tensors`: yields (name, tensor) as each broadcast lands."""
    for entry in meta:
        if len(entry) != 3:
            raise ValueError(f"weight meta entry {entry!r}: expected (name, dtype, shape)")
        name, dtype, shape = entry
        buf = torch.empty(tuple(shape), dtype=dtype_from_name(dtype), device=group.device)
        group.broadcast(buf, src=0)
        yield name, buf


def pack_state_dict(named_tensors: NamedTensors, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Detached contiguous CPU copies (optionally cast): what goes through the Ray object store."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in _items(named_tensors):
        t = tensor.detach()
        if dtype is not None:
            t = t.to(dtype)
        out[name] = t.to("cpu").contiguous()
    return out


def resolve_param_name(name: str, known: Mapping[str, Any]) -> str | None:
    """Map a sender name to the receiving model's: as is, or without DeepSpeed/DDP/compile wrapper prefixes."""
    candidate = name
    for _ in range(3):
        if candidate in known:
            return candidate
        for prefix in ("module.", "_orig_mod."):
            if candidate.startswith(prefix):
                candidate = candidate[len(prefix) :]
                break
        else:
            return None
    return candidate if candidate in known else None


@torch.no_grad()
def load_named_tensors(model: torch.nn.Module, named_tensors: NamedTensors) -> int:
    """Copy each given tensor into the same-named parameter or buffer of ``model``; returns the count.

    Strict on the names given: an unknown name or a shape mismatch raises, naming the tensor. Names not
    given keep their values (tied weights follow their owner). Values are cast to the target's dtype.
    """
    targets: dict[str, torch.Tensor] = dict(model.named_parameters(remove_duplicate=False))
    targets.update(dict(model.named_buffers(remove_duplicate=False)))
    count = 0
    for name, tensor in _items(named_tensors):
        key = resolve_param_name(name, targets)
        if key is None:
            close = [k for k in targets if k.endswith(name.split(".")[-1])][:3]
            raise KeyError(
                f"update_weights: {name!r} is not a parameter of {type(model).__name__}"
                + (f" (similar: {close})" if close else "")
            )
        target = targets[key]
        if tuple(target.shape) != tuple(tensor.shape):
            raise ValueError(
                f"update_weights: {name!r} has shape {tuple(tensor.shape)}, the model's is {tuple(target.shape)}"
            )
        target.copy_(tensor.to(device=target.device, dtype=target.dtype))
        count += 1
    return count


def engine_sync_ranks(num_engines: int, ranks_per_engine: int = 1) -> list[int]:
    """First sync-group rank of each engine: 1, 1 + k, 1 + 2k, ... (k = tensor-parallel size; 0 is the sender)."""
    return [1 + i * ranks_per_engine for i in range(num_engines)]


def sync_world_size(num_engines: int, ranks_per_engine: int = 1) -> int:
    """Policy rank 0 plus every engine worker."""
    return 1 + num_engines * ranks_per_engine
