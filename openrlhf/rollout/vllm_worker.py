"""The vLLM worker extension: weight receiving inside each vLLM GPU worker (one per tensor-parallel rank).

vLLM mixes this class into its worker when the engine is built with
``worker_extension_cls="openrlhf.rollout.vllm_worker.WeightSyncWorkerExtension"`` (vLLM 0.33:
vllm/v1/worker/worker_base.py ``WorkerWrapperBase.init_worker`` appends it to the worker class's bases and
refuses any attribute name the worker already has); the engine calls its methods on every worker with
``LLM.collective_rpc(name, args=...)``. Inside a worker, ``self`` also has vLLM's ``model_runner`` (whose
``get_model()`` is the model without CUDA-graph wrappers; its ``load_weights(weights=...)`` takes Hugging
Face names and shards each full tensor for tensor parallelism), ``device`` and ``rank``.

What arrives: ``collective_rpc`` arguments are msgpack-encoded by vLLM's ``MsgpackEncoder`` in the engine
process and decoded *untyped* by the engine-core process (vllm/v1/engine/core.py, ``generic_decoder``), then
handed to the workers (in-process, or pickled to Ray / multiprocessing workers). Tuples become lists, a
torch.Size becomes a list, bytes stay bytes, and a tensor becomes a ``[dtype, shape, data]`` list whose
data is an index into frames the decoder has already dropped when the tensor had 256 bytes or more. So
the engine never sends tensors: each weight travels as a :data:`WeightRecord` ``(name, dtype name, shape,
raw bytes)`` and :func:`tensor_from_record` rebuilds it here. The broadcast meta and the IPC payloads
(:mod:`openrlhf.rollout.ipc_weights`) are plain values that survive the same trip.

Nothing here imports vLLM: the logic is plain torch, and the tests run it on CPU (with a real gloo group,
and behind vLLM's real encoder/decoder in tests/rollout/test_vllm_contract.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from openrlhf.rollout.ipc_weights import open_ipc_weights, pick_payload
from openrlhf.rollout.weight_sync import WeightMeta, create_sync_group, dtype_from_name, dtype_name

# (name, dtype name such as "bfloat16", shape, the tensor's bytes in C order): msgpack-native values only.
WeightRecord = tuple[str, str, list[int], bytes]


def weight_record(name: str, tensor: torch.Tensor) -> WeightRecord:
    """One weight as plain values: what survives ``collective_rpc``'s msgpack round trip unchanged."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    return str(name), dtype_name(tensor.dtype), [int(d) for d in tensor.shape], data


def tensor_from_record(dtype: str, shape: Sequence[int], data: bytes | bytearray | memoryview) -> torch.Tensor:
    """The CPU tensor a :func:`weight_record` describes (its own memory, writable)."""
    torch_dtype = dtype_from_name(dtype)
    shape = tuple(int(d) for d in shape)
    if len(data) == 0:
        return torch.empty(shape, dtype=torch_dtype)
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return raw.view(torch_dtype).reshape(shape)


def named_tensor_from_wire(entry: Sequence[Any]) -> tuple[str, torch.Tensor]:
    """A (name, tensor) from a :data:`WeightRecord` (as sent, or as a decoded list), or an in-process
    ``(name, tensor)`` pair. A tensor that went through msgpack arrives as a ``[dtype, shape, data]`` list
    and is refused with the reason, since its data may be gone."""
    if len(entry) == 4:
        name, dtype, shape, data = entry
        return str(name), tensor_from_record(dtype, shape, data)
    if len(entry) == 2 and isinstance(entry[1], torch.Tensor):
        return str(entry[0]), entry[1]
    raise TypeError(
        f"load_named_weights: {str(entry)[:120]} is neither (name, dtype, shape, bytes) nor (name, tensor); "
        "a tensor sent through collective_rpc arrives as a [dtype, shape, data] list (send weight_record)"
    )


def worker_sync_rank(rank_offset: int, worker_rank: int) -> int:
    """Rank of a vLLM worker in the weight-sync group: its engine's first rank plus its TP rank."""
    return int(rank_offset) + int(worker_rank)


class WeightSyncWorkerExtension:
    """Methods vLLM adds to its workers: join the sync group, receive weights, load shared (IPC) weights.

    Every attribute name here must be new to vLLM's worker class (vLLM asserts it); the contract tests
    compare them with vllm/v1/worker/gpu_worker.py.
    """

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
        # get_model() unwraps CUDA-graph / micro-batch wrappers (vllm/v1/worker/gpu_model_runner.py).
        self.model_runner.get_model().load_weights(weights=weights)

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
            master_address,
            int(master_port),
            rank,
            int(world_size),
            str(group_name),
            backend,
            device=device,
            timeout_s=float(timeout_s),
        )
        return rank

    @torch.no_grad()
    def receive_weights(self, meta: WeightMeta) -> int:
        """Receive each broadcast from policy rank 0 and hand it to vLLM's ``load_weights``, one at a time.

        ``meta`` arrives as lists ``[name, dtype name, [dims]]`` (msgpack turns tuples into lists).
        """
        group = self._weight_sync_group
        if group is None:
            raise RuntimeError("receive_weights: call init_weight_sync_group on the workers first")
        target = self._worker_device()
        for name, dtype, shape in meta:
            buf = torch.empty(tuple(int(d) for d in shape), dtype=dtype_from_name(dtype), device=group.device)
            group.broadcast(buf, src=0)
            self._load([(str(name), buf.to(target))])
            del buf
        return len(meta)

    @torch.no_grad()
    def load_named_weights(self, records: Sequence[Sequence[Any]]) -> int:
        """The object-store path: one bucket of full weights as :data:`WeightRecord` s (see the module doc)."""
        target = self._worker_device()
        for entry in records:
            name, tensor = named_tensor_from_wire(entry)
            self._load([(name, tensor.to(target))])
        return len(records)

    @torch.no_grad()
    def update_weights_from_ipc(self, payloads_by_device: dict[str, Any]) -> int:
        """Colocated: open the bucket the policy rank on this worker's device shared and load it.

        ``payloads_by_device`` maps a device UUID to an :mod:`openrlhf.rollout.ipc_weights` payload; after
        msgpack its handle and meta are lists, which ``open_ipc_weights`` takes as they are.
        """
        device = self._worker_device()
        payload = pick_payload(payloads_by_device, device)
        index = device.index if device.type == "cuda" else None
        weights = open_ipc_weights(payload, index)
        for name, tensor in weights:
            self._load([(name, tensor)])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return len(weights)
