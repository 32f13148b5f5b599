"""Policy -> rollout engines after each training step, and the hybrid engine's sleep/wake around it.

Four ways the new weights travel (``rollout.weight_sync``, resolved once in the run's layout: openrlhf/plan/layout.py):

- ``in_process``: colocated HF engines are the policy ranks themselves (``PolicyWorker.generate``): they
  generate with the weights they train, so nothing travels (the hybrid engine on one device, as TRL runs).
- ``ipc``: the engines share the policy's devices (``train.colocate_all``, the hybrid engine). Each policy
  rank packs buckets of parameters into a shared buffer on its own device and the engine on that device
  opens it (CUDA IPC on GPU, shared memory on CPU; :mod:`openrlhf.rollout.ipc_weights`). A broadcast is
  impossible there: NCCL refuses two ranks of one group on one GPU.
- ``broadcast``: engines on their own devices join a torch.distributed group with policy rank 0, which
  broadcasts parameter by parameter (NCCL for vLLM, gloo on CPU; :mod:`openrlhf.rollout.weight_sync`).
- ``object_store``: rank 0's full weights through the Ray object store, once for all engines.

The hybrid engine's memory dance, per step (OpenRLHF's order), when colocated:

    generate -> engines.sleep()                              [vllm.enable_sleep]
    log-probs, train (the policy wakes itself if it slept)
    engines.wake_up(["weights"]) -> push weights -> policy.sleep()   [ds.enable_sleep]
    engines.wake_up(["kv_cache"]) -> next generate
"""

from __future__ import annotations

from typing import Any

from openrlhf.config import Config
from openrlhf.plan.layout import RunLayout
from openrlhf.rollout.ipc_weights import DEFAULT_BUCKET_BYTES


class WeightPusher:
    """Moves the policy's weights to the engines and sleeps/wakes colocated roles around training."""

    def __init__(
        self, cfg: Config, policy, engines: list, layout: RunLayout, *, bucket_bytes: int = DEFAULT_BUCKET_BYTES
    ) -> None:
        self.cfg = cfg
        self.policy = policy
        self.engines = engines
        self.backend = layout.backend
        self.mode = layout.weight_sync
        self.gpus = layout.cluster_gpus > 0
        self.bucket_bytes = bucket_bytes
        colocated = cfg.train.colocate_all and self.mode != "in_process"  # in process: one model, no dance
        self.engines_sleep = colocated and cfg.vllm.enable_sleep
        self.policy_sleeps = colocated and cfg.ds.enable_sleep
        self._group_ready = False
        self._buckets: list[list[str]] | None = None

    # ------------------------------------------------------------------ sleep / wake

    def _engines_call(self, method: str, *args) -> list:
        from openrlhf.utils.actor_calls import wait_for

        return wait_for([getattr(e, method).remote(*args) for e in self.engines], f"engines.{method}")

    def after_generation(self) -> None:
        """The engines are done for this step: free their memory for training (vllm.enable_sleep)."""
        if self.engines_sleep:
            self._engines_call("sleep")

    # ------------------------------------------------------------------ the push

    def push(self) -> None:
        """New weights into every engine; afterwards the engines are awake and ready to generate."""
        if self.mode == "in_process":
            return  # the engines are the policy ranks: they already hold the new weights
        if self.engines_sleep:
            self._engines_call("wake_up", ["weights"])
        if self.mode == "ipc":
            self._push_ipc()
        elif self.mode == "broadcast":
            self._push_broadcast()
        else:
            self._push_object_store()
        if self.policy_sleeps:
            self.policy.call("sleep")
        if self.engines_sleep:
            self._engines_call("wake_up", ["kv_cache"])

    def _push_ipc(self) -> None:
        from openrlhf.utils.actor_calls import wait_for

        if self._buckets is None:
            self._buckets = wait_for(
                [self.policy.handles[0].ipc_buckets.remote(self.bucket_bytes)], "policy.ipc_buckets"
            )[0]
        try:
            for names in self._buckets:
                payloads = self.policy.call("ipc_weight_bucket", names)
                by_device = {p["device"]: p for p in payloads if p is not None}
                self._engines_call("update_weights_from_ipc", by_device)
        finally:
            self.policy.call("release_ipc_weights")

    def _init_broadcast_group(self) -> None:
        """One torch.distributed group: policy rank 0 (rank 0) and every engine rank, apart from DeepSpeed's."""
        from openrlhf.rollout.weight_sync import engine_sync_ranks, sync_world_size
        from openrlhf.utils.actor_calls import wait_for

        per_engine = self.cfg.vllm.tensor_parallel_size if self.backend == "vllm" else 1
        world = sync_world_size(len(self.engines), per_engine)
        # NCCL needs GPUs: HF engines and every engine on a CPU cluster (vLLM's CPU build) broadcast over gloo.
        backend = self.cfg.vllm.sync_backend if self.backend == "vllm" and self.gpus else "gloo"
        addr, port = wait_for([self.policy.handles[0].sync_address.remote()], "policy.sync_address")[0]
        name = f"weight-sync-{port}"
        refs = [h.init_weight_sync.remote(addr, port, world, name, backend) for h in self.policy.handles]
        ranks = engine_sync_ranks(len(self.engines), per_engine)
        refs += [
            e.init_weight_sync_group.remote(addr, port, r, world, name, backend)
            for e, r in zip(self.engines, ranks, strict=True)
        ]
        wait_for(refs, "weight-sync group set-up (policy rank 0 and the engines)")
        self._group_ready = True

    def _push_broadcast(self) -> None:
        from openrlhf.utils.actor_calls import wait_for

        if not self._group_ready:
            self._init_broadcast_group()
        meta = wait_for([self.policy.handles[0].weight_sync_meta.remote()], "policy.weight_sync_meta")[0]
        refs = [h.broadcast_weights.remote() for h in self.policy.handles]
        refs += [engine.receive_weights.remote(meta) for engine in self.engines]
        wait_for(refs, "weight broadcast (policy -> engines)")

    def _push_object_store(self) -> None:
        import ray

        from openrlhf.utils.actor_calls import wait_for

        weights = self.policy.call("get_weights")[0]
        ref = ray.put(weights)
        wait_for([engine.update_weights.remote(ref) for engine in self.engines], "engines.update_weights")

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "engines_sleep": self.engines_sleep, "policy_sleeps": self.policy_sleeps}
