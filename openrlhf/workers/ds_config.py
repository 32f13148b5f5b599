"""DeepSpeed config dicts built from the typed config (training and inference engines)."""

from __future__ import annotations

from typing import Any

from openrlhf.config import Config


def train_ds_config(cfg: Config, *, micro_batch_size: int, grad_accum_steps: int, world_size: int) -> dict[str, Any]:
    """ZeRO stage, offload, bf16 (GPU only: CPU runs stay fp32), gradient clipping and batch geometry."""
    from openrlhf.workers.distributed import accelerator_available

    on_gpu = accelerator_available()
    zero: dict[str, Any] = {"stage": cfg.ds.zero_stage}
    if cfg.ds.zero_stage >= 1 and cfg.ds.adam_offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    if cfg.ds.zero_stage == 3:
        zero.update({"stage3_param_persistence_threshold": 0, "stage3_gather_16bit_weights_on_model_save": True})
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": grad_accum_steps,
        "train_batch_size": micro_batch_size * grad_accum_steps * world_size,
        "zero_optimization": zero,
        "gradient_clipping": cfg.train.max_norm,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
        # A torch optimizer is used on every device; allow it under ZeRO offload too.
        "zero_force_ds_cpu_optimizer": False,
        "zero_allow_untested_optimizer": True,
    }
    if cfg.ds.bf16 and on_gpu:
        config["bf16"] = {"enabled": True}
    return config


def eval_ds_config(cfg: Config, *, micro_batch_size: int, world_size: int) -> dict[str, Any]:
    """An inference-only engine (reference model): ZeRO-3 shards parameters, other stages replicate."""
    from openrlhf.workers.distributed import accelerator_available

    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "train_batch_size": micro_batch_size * world_size,
        "zero_optimization": {"stage": 3 if cfg.ds.zero_stage == 3 else 0, "stage3_param_persistence_threshold": 0},
        "steps_per_print": 10**9,
    }
    if cfg.ds.bf16 and accelerator_available():
        config["bf16"] = {"enabled": True}
    return config
