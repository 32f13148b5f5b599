"""Model plumbing shared by the policy and reference workers: loading under DeepSpeed, scoring, export."""

from __future__ import annotations

import logging
from typing import Any

import torch

from openrlhf.config import Config
from openrlhf.workers.experience import Experience

logger = logging.getLogger(__name__)
_told_packing_falls_back = False


def _dtype_for(cfg: Config) -> str:
    from openrlhf.workers.distributed import accelerator_available

    if cfg.actor.dtype != "auto":
        return cfg.actor.dtype
    return "bfloat16" if (cfg.ds.bf16 and accelerator_available()) else "float32"


def load_for_deepspeed(cfg: Config, model_path: str, ds_config: dict[str, Any]):
    """Load an HF model so that DeepSpeed can wrap it; under ZeRO-3 weights are sharded as they load.

    With the DeepSpeed and transformers versions this project installs, HfDeepSpeedConfig has to exist before
    from_pretrained (transformers then partitions the weights as they load; a deepspeed.zero.Init context around
    from_pretrained fails), and torch._dynamo has to be imported first, or loading fails with a
    signature-mismatch error.
    """
    from openrlhf.models.loading import load_model

    keep_alive = None
    if ds_config["zero_optimization"]["stage"] == 3:
        import torch._dynamo  # noqa: F401
        from transformers.integrations import HfDeepSpeedConfig

        keep_alive = HfDeepSpeedConfig(ds_config)  # must stay referenced while from_pretrained runs
    model = load_model(
        model_path,
        dtype=_dtype_for(cfg),
        trust_remote_code=cfg.actor.trust_remote_code,
        attn_implementation=cfg.actor.attn_implementation,
    )
    del keep_alive
    return model


def load_trainable_model(cfg: Config, ds_config: dict[str, Any]):
    from openrlhf.models.loading import apply_lora, freeze_vision_tower

    model = load_for_deepspeed(cfg, cfg.actor.model_name_or_path, ds_config)
    if cfg.actor.freeze_vision_tower:
        freeze_vision_tower(model)
    if cfg.actor.lora.rank > 0:
        model = apply_lora(model, cfg.actor.lora)
    if cfg.ds.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model


def forward_log_probs(
    engine,
    mb: Experience,
    *,
    temperature: float,
    with_entropy: bool = False,
    entropy_grad: bool = False,
    packed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs [b, R] (and entropy; with its gradient only if ``entropy_grad``) of the response tokens of a
    micro-batch, images included; ``packed``: one padding-free forward (openrlhf.models.packing)."""
    from openrlhf.models.logprobs import compute_token_log_probs, concat_multimodal

    device = engine.device
    kwargs: dict[str, Any] = {
        "num_response_tokens": mb.num_response_tokens,
        "temperature": temperature,
        "return_entropy": with_entropy,
        "entropy_grad": entropy_grad,
    }
    ids, mask = mb.sequences.to(device), mb.attention_mask.to(device)
    if packed and not mb.has_images():
        from openrlhf.models.packing import compute_packed_token_log_probs

        return compute_packed_token_log_probs(engine, ids, mask, **kwargs)
    if packed:
        _tell_packing_falls_back()
    multimodal = concat_multimodal(mb.multimodal) if mb.has_images() else None
    if multimodal is not None:
        multimodal = {k: v.to(device) for k, v in multimodal.items()}
    return compute_token_log_probs(engine, ids, mask, multimodal=multimodal, **kwargs)


def _tell_packing_falls_back() -> None:
    """Once per process: ds.packing_samples does not pack micro-batches that hold images."""
    global _told_packing_falls_back
    if not _told_packing_falls_back:
        _told_packing_falls_back = True
        logger.warning(
            "ds.packing_samples: micro-batches with images use the padded forward (packing covers text rows); "
            "results are the same, only the padding-free saving is lost for them"
        )


def scoring_micro_batches(cfg: Config, exp: Experience):
    """The micro-batches of a no-grad log-prob pass (rollout.max_tokens_per_gpu, else the train budget)."""
    from openrlhf.workers.micro_batching import plan_micro_batches

    budget = cfg.rollout.max_tokens_per_gpu or cfg.train.max_tokens_per_gpu
    return plan_micro_batches(
        exp,
        cfg.train.micro_rollout_batch_size,
        budget,
        dynamic=cfg.train.dynamic_batch_enable,
        packed=cfg.ds.packing_samples,
    )


@torch.no_grad()
def score_experience(engine, cfg: Config, exp: Experience) -> torch.Tensor:
    """Per-token log-probs [B, R] of every row's response (no grad), micro-batch by micro-batch."""
    from openrlhf.workers.micro_batching import scatter_rows

    pieces = []
    for mb in scoring_micro_batches(cfg, exp):
        log_probs, _ = forward_log_probs(
            engine, mb.exp, temperature=cfg.rollout.temperature, packed=cfg.ds.packing_samples
        )
        pieces.append((mb, log_probs))
    return scatter_rows(pieces, exp.batch_size, exp.num_response_tokens)


def _unwrapped(engine):
    return engine.module if hasattr(engine, "module") else engine


def named_weights_for_sync(engine, cfg: Config, rank: int) -> dict[str, torch.Tensor] | None:
    """HF-named full tensors for the rollout engines, gathered from ZeRO-3 shards; LoRA merged in."""
    import deepspeed

    model = _unwrapped(engine)
    if cfg.actor.lora.rank > 0:
        return merged_lora_weights(model) if rank == 0 else None
    out: dict[str, torch.Tensor] = {}
    gather = cfg.ds.zero_stage == 3
    for name, param in model.named_parameters():
        with deepspeed.zero.GatheredParameters([param], enabled=gather):
            if rank == 0:
                out[name] = param.detach().to("cpu", copy=True)
    return out if rank == 0 else None


def merged_lora_weights(peft_model) -> dict[str, torch.Tensor]:
    """Base-model weights with the LoRA deltas merged in (W + B A * alpha / r), under the base names."""
    peft_model.merge_adapter()
    try:
        return {
            name.replace(".base_layer", ""): param.detach().to("cpu", copy=True)
            for name, param in peft_model.get_base_model().named_parameters()
            if "lora_" not in name
        }
    finally:
        peft_model.unmerge_adapter()


def export_hf_model(engine, cfg: Config, rank: int, out_dir: str) -> None:
    """save_pretrained of the policy (plus tokenizer/processor) on rank 0; ZeRO-3 weights gathered."""
    from openrlhf.models.loading import load_model, load_processor, load_tokenizer, save_pretrained_all

    state = named_weights_for_sync(engine, cfg, rank)
    if rank != 0:
        return
    path = cfg.actor.model_name_or_path
    model = load_model(path, dtype=_dtype_for(cfg), trust_remote_code=cfg.actor.trust_remote_code)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise RuntimeError(f"export: weights not in the base model: {unexpected[:5]}")
    save_pretrained_all(model, load_tokenizer(path), load_processor(path), out_dir)
