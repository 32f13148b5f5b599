"""The policy (actor) worker: one rank of a DeepSpeed data-parallel group, hosted in a Ray actor.

It computes log-probs of responses, trains on experience with the loss from ``openrlhf.algorithms``,
guards against non-finite updates, hands its weights to the rollout engines, and saves/loads checkpoints.
The same class does the supervised warm start (``sft_step``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from openrlhf.config import Config
from openrlhf.utils.threads import set_num_threads
from openrlhf.workers.distributed import init_process_group
from openrlhf.workers.ds_config import train_ds_config
from openrlhf.workers.experience import Experience
from openrlhf.workers.micro_batching import plan_micro_batches
from openrlhf.workers.model_io import (
    forward_log_probs,
    load_trainable_model,
    named_weights_for_sync,
    score_experience,
)


class PolicyWorker:
    def __init__(
        self,
        cfg_dict: dict[str, Any],
        rank: int,
        world_size: int,
        master_addr: str,
        master_port: int,
        *,
        total_optimizer_steps: int,
        learning_rate: float | None = None,
        workers_on_node: int = 1,
    ) -> None:
        import deepspeed
        from transformers import get_scheduler

        self.cfg = Config.model_validate(cfg_dict)
        self.rank, self.world_size = rank, world_size
        set_num_threads(self.cfg.train.num_threads_per_worker, workers_on_node)
        init_process_group(rank, world_size, master_addr, master_port)
        torch.manual_seed(self.cfg.train.seed + rank)

        micro = self.cfg.train.micro_train_batch_size
        ds_config = train_ds_config(self.cfg, micro_batch_size=micro, grad_accum_steps=1, world_size=world_size)
        model = load_trainable_model(self.cfg, ds_config)
        params = [p for p in model.parameters() if p.requires_grad]
        lr = learning_rate if learning_rate is not None else self.cfg.train.learning_rate
        optimizer = make_optimizer(self.cfg, params, lr)
        warmup = math.ceil(self.cfg.train.lr_warmup_ratio * total_optimizer_steps)
        scheduler_kwargs = {}
        if self.cfg.train.lr_scheduler == "cosine_with_min_lr":
            scheduler_kwargs = {"scheduler_specific_kwargs": {"min_lr_rate": self.cfg.train.min_lr_ratio}}
        scheduler = get_scheduler(
            self.cfg.train.lr_scheduler,
            optimizer,
            num_warmup_steps=warmup,
            num_training_steps=max(1, total_optimizer_steps),
            **scheduler_kwargs,
        )
        self.engine, *_ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config
        )
        self.nonfinite_skips = 0
        self.optimizer_steps = 0
        self._asleep = False
        self._sleeps = self._wakes = 0

    # ------------------------------------------------------------------ scoring

    def compute_log_probs(self, exp: Experience) -> torch.Tensor:
        """Per-token log-probs [B, R] of the responses under the current policy (eval mode, no grad)."""
        self.wake_up()
        self.engine.eval()
        return score_experience(self.engine, self.cfg, exp)

    # ------------------------------------------------------------------ generation (weight_sync in_process)

    def generate(self, requests: list, params) -> list:
        """The hybrid engine in one process: generate with the policy's own weights (HF generate, eval mode).

        Used when ``rollout.weight_sync`` resolves to in_process (colocated HF engines, ZeRO-0..2): the driver
        calls the policy ranks as its rollout engines, so there are no weights to copy after a step.
        """
        return self._own_rollout_engine().generate(requests, params)

    def generate_stream(self, requests: list, params):
        """generate() in pieces of finished groups (RolloutEngine.generate_stream), for scoring while it runs."""
        yield from self._own_rollout_engine().generate_stream(requests, params)

    def _own_rollout_engine(self):
        from openrlhf.rollout.hf_engine import HFRolloutEngine, engine_kwargs

        self.wake_up()
        if getattr(self, "_rollout", None) is None:
            path = self.cfg.actor.model_name_or_path
            self._rollout = HFRolloutEngine(path, model=self.engine.module, **engine_kwargs(self.cfg))
        self.engine.eval()
        return self._rollout

    # ------------------------------------------------------------------ training

    def _all_reduce(self, value: torch.Tensor, op: str = "sum") -> torch.Tensor:
        import torch.distributed as dist

        value = value.to(self.engine.device)
        dist.all_reduce(value, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MIN)
        return value.cpu()

    def _finish_optimizer_step(self, local_finite: bool) -> bool:
        """Step the optimizer unless any rank saw a non-finite loss or gradient; returns True if applied."""
        finite = bool(self._all_reduce(torch.tensor([1.0 if local_finite else 0.0]), op="min").item())
        if finite and self.cfg.ds.zero_stage == 0:
            # ZeRO-1..3 skip a non-finite step themselves; plain data parallel does not.
            grads = [p.grad for p in self.engine.module.parameters() if p.grad is not None]
            local = all(torch.isfinite(g).all() for g in grads)
            finite = bool(self._all_reduce(torch.tensor([1.0 if local else 0.0]), op="min").item())
        if not finite:
            for p in self.engine.module.parameters():
                p.grad = None  # torch optimizers leave parameters without a gradient untouched
        self.engine.step()
        applied = finite and (self.cfg.ds.zero_stage == 0 or self.engine.was_step_applied())
        self.nonfinite_skips = 0 if applied else self.nonfinite_skips + 1
        self.optimizer_steps += int(applied)
        return applied

    def train_on_experience(self, exp: Experience, *, kl_coef: float = 0.0, inject_nonfinite: bool = False) -> dict:
        """Epochs over this rank's shard: per optimizer mini-batch, accumulate micro-batch grads, then step.

        Each micro-batch loss is its share of the aggregated loss over the whole global mini-batch (the global
        token and sequence counts go to the aggregation), so the accumulated gradient is that loss's gradient.
        """
        from openrlhf.algorithms import compute_policy_loss

        self.wake_up()
        self.engine.train()
        cfg = self.cfg
        rows = exp.batch_size
        global_rows = rows * self.world_size
        per_step = cfg.train.train_batch_size // self.world_size if cfg.train.train_batch_size else rows
        per_step = max(1, min(per_step, rows))
        history: dict[str, list[float]] = {}
        skipped = 0
        for _epoch in range(cfg.train.max_epochs):
            for start in range(0, rows, per_step):
                mini = exp.select(slice(start, start + per_step))
                local_tokens = mini.response_mask.sum().float()
                global_tokens = float(self._all_reduce(local_tokens.reshape(1)).item())
                global_mini_rows = mini.batch_size * self.world_size
                micro = [
                    m.exp
                    for m in plan_micro_batches(
                        mini,
                        cfg.train.micro_train_batch_size,
                        cfg.train.max_tokens_per_gpu,
                        dynamic=cfg.train.dynamic_batch_enable,
                        packed=cfg.ds.packing_samples,
                    )
                ]
                local_finite = True
                for i, mb in enumerate(micro):
                    self.engine.set_gradient_accumulation_boundary(i == len(micro) - 1)
                    logprobs, entropy = forward_log_probs(
                        self.engine,
                        mb,
                        temperature=cfg.rollout.temperature,
                        with_entropy=True,
                        entropy_grad=cfg.algo.entropy_coef > 0,
                        packed=cfg.ds.packing_samples,
                    )
                    # exactly on-policy (driver.old_logprobs_from_training): pi_old is this forward, detached
                    old = mb.old_log_probs if mb.old_log_probs is not None else logprobs.detach()
                    loss, metrics = compute_policy_loss(
                        logprobs,
                        old,
                        mb.advantages,
                        mb.response_mask,
                        cfg.algo,
                        ref_log_probs=mb.ref_log_probs,
                        sampler_log_probs=mb.sampler_log_probs,
                        entropy=entropy,
                        kl_coef=kl_coef,
                        global_token_count=global_tokens,
                        global_seq_count=global_mini_rows,
                        max_response_len=cfg.rollout.max_new_tokens,  # Dr.GRPO's constant normaliser
                    )
                    # the shares sum to the global loss over micro-batches and ranks, and DeepSpeed averages the
                    # W ranks' gradients (we accumulate without its 1/GAS): W undoes that average
                    loss = loss * self.world_size
                    if inject_nonfinite:
                        loss = loss * float("nan")
                    if not torch.isfinite(loss):
                        local_finite = False
                        # Backward the non-finite loss itself: the averaged gradients turn non-finite on every
                        # rank and DeepSpeed's overflow check drops the whole step, Adam moments included. A
                        # zero-gradient stand-in would not: Adam's momentum would still move the weights.
                        if not loss.requires_grad:
                            loss = sum(
                                p.sum() * float("nan") for p in self.engine.module.parameters() if p.requires_grad
                            )
                    self.engine.backward(loss, scale_wrt_gas=False)
                    for key, value in metrics.items():
                        history.setdefault(key, []).append(float(value))
                applied = self._finish_optimizer_step(local_finite)
                skipped += int(not applied)
                grad_norm = self.engine.get_global_grad_norm()
                if grad_norm is not None and applied:
                    history.setdefault("grad_norm", []).append(float(grad_norm))
        out = {k: sum(v) / len(v) for k, v in history.items() if v}
        out.update(
            {
                "nonfinite_skipped_steps": float(skipped),
                "nonfinite_skips_in_a_row": float(self.nonfinite_skips),
                "lr": float(self.engine.get_lr()[0]),
                "optimizer_steps": float(self.optimizer_steps),
                "global_rows": float(global_rows),
            }
        )
        return out

    def sft_step(self, exp: Experience) -> dict:
        """One optimizer step of supervised fine-tuning: token-mean NLL of the response tokens."""
        self.wake_up()
        self.engine.train()
        global_tokens = float(self._all_reduce(exp.response_mask.sum().float().reshape(1)).item())
        micro = [m.exp for m in plan_micro_batches(exp, self.cfg.sft.micro_batch_size, 0, dynamic=False, packed=False)]
        total = 0.0
        local_finite = True
        for i, mb in enumerate(micro):
            self.engine.set_gradient_accumulation_boundary(i == len(micro) - 1)
            logprobs, _ = forward_log_probs(self.engine, mb, temperature=1.0, packed=self.cfg.ds.packing_samples)
            mask = mb.response_mask.to(logprobs.dtype)
            loss = -(logprobs * mask).sum() / max(global_tokens, 1.0) * self.world_size
            local_finite &= bool(torch.isfinite(loss))
            self.engine.backward(loss, scale_wrt_gas=False)
            total += float(loss.detach()) / self.world_size
        applied = self._finish_optimizer_step(local_finite)
        return {"sft/loss": total, "sft/applied": float(applied), "lr": float(self.engine.get_lr()[0])}

    # ------------------------------------------------------------------ weights and checkpoints

    def get_weights(self) -> dict[str, torch.Tensor] | None:
        """Full HF-named weights on rank 0 (ZeRO-3 shards gathered; every rank must call), None elsewhere."""
        self.wake_up()
        return named_weights_for_sync(self.engine, self.cfg, self.rank)

    def sync_address(self) -> tuple[str, int]:
        """Where the weight-sync group's store will listen (this rank-0 node, a free port)."""
        from openrlhf.workers.distributed import free_port, node_ip

        return node_ip(), free_port()

    def init_weight_sync(self, master_address: str, master_port: int, world_size: int, group_name: str, backend: str):
        """Rank 0 becomes rank 0 of a group with every engine rank (a group apart from DeepSpeed's)."""
        if self.rank == 0:
            from openrlhf.rollout.weight_sync import create_sync_group_sender

            self._sync_group = create_sync_group_sender(master_address, master_port, world_size, group_name, backend)

    def weight_sync_meta(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """(name, dtype, full shape) of every tensor broadcast_weights() sends, in order."""
        from openrlhf.rollout.weight_sync import dtype_name

        if self.cfg.actor.lora.rank > 0:
            weights = self.get_weights() or {}
            return [(n, dtype_name(t.dtype), tuple(t.shape)) for n, t in weights.items()]
        model = self.engine.module
        return [
            (name, dtype_name(p.dtype), tuple(getattr(p, "ds_shape", p.shape))) for name, p in model.named_parameters()
        ]

    def broadcast_weights(self) -> int:
        """Parameter by parameter: every rank gathers its ZeRO-3 shard, rank 0 broadcasts the full tensor."""
        import deepspeed

        from openrlhf.rollout.weight_sync import broadcast_named_tensors

        self.wake_up()
        if self.cfg.actor.lora.rank > 0:
            weights = self.get_weights()
            return broadcast_named_tensors(weights, self._sync_group) if self.rank == 0 else 0
        sent = 0
        gather = self.cfg.ds.zero_stage == 3
        for name, param in self.engine.module.named_parameters():
            with deepspeed.zero.GatheredParameters([param], enabled=gather):
                if self.rank == 0:
                    sent += broadcast_named_tensors([(name, param.data)], self._sync_group)
        return sent

    # ------------------------------------------------------------------ colocated weight sharing (hybrid engine)

    def _shares_ipc(self) -> bool:
        """On GPUs every rank shares with the engine on its own device; on the CPU (one device) rank 0 does."""
        return self.engine.device.type == "cuda" or self.rank == 0

    def ipc_buckets(self, bucket_bytes: int) -> list[list[str]]:
        """The parameter names of each IPC bucket (the same on every rank: full, not sharded, sizes)."""
        from openrlhf.rollout.ipc_weights import plan_buckets

        sizes = [
            (name, int(getattr(p, "ds_numel", p.numel())) * p.element_size())
            for name, p in self._sync_named_parameters()
        ]
        return plan_buckets(sizes, bucket_bytes)

    def _sync_named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        if self.cfg.actor.lora.rank > 0:
            from openrlhf.workers.model_io import merged_lora_weights

            if getattr(self, "_lora_merged", None) is None:
                self._lora_merged = list(merged_lora_weights(self.engine.module).items())
            return self._lora_merged
        return list(self.engine.module.named_parameters())

    def ipc_weight_bucket(self, names: list[str]) -> dict | None:
        """Pack one bucket into a shared buffer on this rank's device (ZeRO-3 shards gathered; every rank
        must call); returns the payload (openrlhf.rollout.ipc_weights), or None on a rank that shares nothing."""
        import deepspeed

        from openrlhf.rollout.ipc_weights import IpcSender

        self.wake_up()
        if getattr(self, "_ipc_sender", None) is None:
            self._ipc_sender = IpcSender(self.engine.device)
        wanted = set(names)
        params = [(n, p) for n, p in self._sync_named_parameters() if n in wanted]
        gather = self.cfg.ds.zero_stage == 3 and self.cfg.actor.lora.rank == 0
        with deepspeed.zero.GatheredParameters([p for _, p in params], enabled=gather):
            if not self._shares_ipc():
                return None
            return self._ipc_sender.pack((n, p.detach()) for n, p in params)

    def release_ipc_weights(self) -> int:
        """Every engine has loaded the shared buffers: free them."""
        self._lora_merged = None
        sender = getattr(self, "_ipc_sender", None)
        return sender.release() if sender is not None else 0

    # ------------------------------------------------------------------ sleep (colocated with the engines)

    def sleep(self) -> bool:
        """ds.enable_sleep: offload parameters, gradients and optimizer states to host memory while the
        colocated engines generate (DeepSpeed's offload_states); returns whether anything moved."""
        if self._asleep:
            return False
        self._asleep = True
        self._sleeps += 1
        if not self._offload_supported():
            return False
        cuda = self.engine.device.type == "cuda"
        self.engine.offload_states(pin_memory=cuda)  # on the CPU: DeepSpeed's real path, host to host
        if cuda:
            torch.cuda.empty_cache()
        return True

    def _offload_supported(self) -> bool:
        """DeepSpeed's offload_states: ZeRO-1/2 with any optimizer, ZeRO-3 only with its FusedAdam (which
        make_optimizer picks on GPUs when ds.enable_sleep); ZeRO-0 has no ZeRO optimizer to offload."""
        stage = self.cfg.ds.zero_stage
        if stage == 0:
            return False
        if stage == 3:
            from deepspeed.ops.adam import FusedAdam

            return isinstance(self.engine.optimizer.optimizer, FusedAdam)
        return True

    def wake_up(self) -> bool:
        """Bring the states back before scoring or training (called automatically when asleep)."""
        if not self._asleep:
            return False
        self._asleep = False
        self._wakes += 1
        if not self._offload_supported():
            return False
        self.engine.reload_states()
        return True

    def memory_state(self) -> dict[str, Any]:
        return {"asleep": self._asleep, "sleeps": self._sleeps, "wakes": self._wakes}

    def save_checkpoint(self, ckpt_dir: str, tag: str, client_state: dict | None = None) -> None:
        """DeepSpeed state (module, optimizer, scheduler) plus this rank's torch RNG state."""
        self.wake_up()
        self.engine.save_checkpoint(ckpt_dir, tag=tag, client_state=client_state or {}, save_latest=False)
        rng = {"torch": torch.get_rng_state()}
        torch.save(rng, Path(ckpt_dir) / tag / f"rng_rank{self.rank}.pt")

    def load_checkpoint(self, ckpt_dir: str, tag: str) -> dict:
        _, client_state = self.engine.load_checkpoint(ckpt_dir, tag=tag)
        rng_path = Path(ckpt_dir) / tag / f"rng_rank{self.rank}.pt"
        if rng_path.exists():
            torch.set_rng_state(torch.load(rng_path, weights_only=False)["torch"])
        self.optimizer_steps = int((client_state or {}).get("optimizer_steps", self.optimizer_steps))
        return client_state or {}

    def export_hf(self, out_dir: str) -> None:
        """Write the policy in Hugging Face format (LoRA merged) from rank 0; every rank must call."""
        from openrlhf.workers.model_io import export_hf_model

        export_hf_model(self.engine, self.cfg, self.rank, out_dir)

    def pid(self) -> int:
        return os.getpid()


def make_optimizer(cfg: Config, params: list, lr: float) -> torch.optim.Optimizer:
    """AdamW; on GPUs with ZeRO-3 and ds.enable_sleep DeepSpeed's FusedAdam, the only optimizer whose
    states DeepSpeed's ZeRO-3 ``offload_states`` can move (deepspeed/runtime/zero/stage3.py asserts it)."""
    kwargs = {"lr": lr, "betas": tuple(cfg.train.adam_betas), "weight_decay": cfg.train.weight_decay}
    if cfg.ds.enable_sleep and cfg.ds.zero_stage == 3 and torch.cuda.is_available():
        from deepspeed.ops.adam import FusedAdam

        return FusedAdam(params, adam_w_mode=True, **kwargs)
    return torch.optim.AdamW(params, **kwargs)
