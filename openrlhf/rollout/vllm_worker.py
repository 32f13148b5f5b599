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

How it lands: on the CUDA build each tensor goes straight to ``load_weights``. The CPU build repacks every
linear layer's weight for its GEMM kernels after loading (oneDNN handles or packed copies; the parameter
itself is emptied), so a plain ``load_weights`` there fails ("'Parameter' object has no attribute
'weight_loader'") and would not reach the kernels anyway; updates there go through vLLM's own layerwise reload
(``initialize_layerwise_reload`` -> ``load_weights`` -> ``finalize_layerwise_reload``, which re-runs the
packing), bracketing one whole update (:meth:`WeightSyncWorkerExtension.open_weight_reload` /
:meth:`close_weight_reload`).

Only the CPU build's reload imports vLLM: the rest is plain torch, and the tests run it on CPU (with a real gloo
group, behind vLLM's real encoder/decoder in tests/rollout/test_vllm_contract.py, and inside the real CPU
engine in tests/trainer/test_e2e_vllm_cpu.py).
"""

from __future__ import annotations

import logging
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
    _weight_reload_open = False

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

    def _weights_repacked(self) -> bool:
        """Whether the model's linear layers run repacked kernel weights (the CPU build marks each such layer
        with its ``cpu_linear``), so that updates need vLLM's layerwise reload."""
        modules = getattr(self.model_runner.get_model(), "modules", None)
        return callable(modules) and any(hasattr(module, "cpu_linear") for module in modules())

    def open_weight_reload(self) -> bool:
        """Open one whole weight update (every tensor of the model follows before :meth:`close_weight_reload`).
        Returns whether a layerwise reload was opened (CPU build)."""
        if self._weights_repacked() and not self._weight_reload_open:
            from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

            initialize_layerwise_reload(self.model_runner.get_model())
            self._weight_reload_open = True
        return self._weight_reload_open

    def close_weight_reload(self) -> bool:
        """Close the update: the CPU build processes (repacks) the layers loaded since :meth:`open_weight_reload`."""
        if not self._weight_reload_open:
            return False
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

        self._weight_reload_open = False
        model = self.model_runner.get_model()
        tied = bool(getattr(self.model_runner.model_config.hf_config, "tie_word_embeddings", False))
        _quiet_expected_reload_gaps(tied)
        finalize_layerwise_reload(model, self.model_runner.model_config)
        _repack_kept_cpu_weights(model)
        return True

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
        self.open_weight_reload()
        try:
            for name, dtype, shape in meta:
                buf = torch.empty(tuple(int(d) for d in shape), dtype=dtype_from_name(dtype), device=group.device)
                group.broadcast(buf, src=0)
                # the reload buffers what it is given until its layer is complete: a copy, not the reused buffer
                self._load([(str(name), buf.to(target, copy=self._weight_reload_open))])
                del buf
        finally:
            self.close_weight_reload()
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
        self.open_weight_reload()
        try:
            for name, tensor in weights:
                # views into the sender's buffer: the reload keeps what it is given, so it gets copies
                self._load([(name, tensor.clone() if self._weight_reload_open else tensor)])
        finally:
            self.close_weight_reload()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return len(weights)


def _repack_kept_cpu_weights(model: torch.nn.Module) -> int:
    """Rebuild the CPU GEMM kernels of layers that keep their weight beside the packed copy (the LM head, which
    with tied embeddings *is* the embedding's weight and receives no tensor of its own, so the layerwise reload
    leaves its old packed copy in place: every logit would come from the first weights). Returns the count."""
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

    count = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if hasattr(module, "cpu_linear") and isinstance(weight, torch.Tensor) and weight.ndim == 2 and weight.numel():
            dispatch_cpu_unquantized_gemm(module, remove_weight=False)
            count += 1
    return count


class _ExpectedReloadGaps(logging.Filter):
    """Drops vLLM's "<Layer>: Failed to load weights" for the layers an update never names: the rotary
    embedding (its cos/sin cache is computed, not loaded) and, with tied embeddings, the LM head (rebuilt from
    the embedding by :func:`_repack_kept_cpu_weights`). Any other layer's gap is still logged."""

    def __init__(self) -> None:
        super().__init__()
        self.expected = {"RotaryEmbedding"}

    def filter(self, record: logging.LogRecord) -> bool:
        gap = record.msg == "%s: Failed to load weights" and bool(record.args)
        return not (gap and record.args[0] in self.expected)


_RELOAD_GAPS = _ExpectedReloadGaps()


def _quiet_expected_reload_gaps(tied_embeddings: bool) -> None:
    """Install the filter on vLLM's layerwise-reload logger (once), expecting the LM head when it is tied."""
    logger = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    if _RELOAD_GAPS not in logger.filters:
        logger.addFilter(_RELOAD_GAPS)
    _RELOAD_GAPS.expected = {"RotaryEmbedding", "ParallelLMHead"} if tied_embeddings else {"RotaryEmbedding"}
