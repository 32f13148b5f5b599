"""LoRA on the language model of an LM or VLM (peft), and merging it back for export."""

from __future__ import annotations

from typing import Any

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, TaskType, get_peft_model
from torch import nn


def _field(cfg: Any, name: str, default: Any = None) -> Any:
    return cfg.get(name, default) if isinstance(cfg, dict) else getattr(cfg, name, default)


def language_model_lora_targets(model: nn.Module, target_modules: list[str]) -> list[str]:
    """Qualified names of the Linear layers named in ``target_modules`` outside the vision tower.

    Qwen2.5-VL's vision blocks reuse names such as ``gate_proj``; full names keep LoRA off the vision side.
    """
    from openrlhf.models.loading import vision_tower

    found = vision_tower(model)
    vision_prefix = found[0] + "." if found else None
    wanted = set(target_modules)
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and name.rsplit(".", 1)[-1] in wanted
        and not (vision_prefix and (name + ".").startswith(vision_prefix))
    ]
    if not names:
        raise ValueError(
            f"actor.lora.target_modules {sorted(wanted)} matched no Linear layer of the language model "
            f"in {type(model).__name__}"
        )
    return names


def apply_lora(model: nn.Module, lora_cfg: Any) -> nn.Module:
    """Wrap ``model`` in a peft LoRA model on the language model's ``lora_cfg.target_modules``.

    ``lora_cfg`` is ``openrlhf.config.LoraConfig`` (or a dict with rank, alpha, dropout, target_modules);
    rank 0 returns the model unchanged. The adapter computes ``W x + (alpha / r) * B A x`` with B = 0 at
    start, so the wrapped model begins equal to the base; every non-LoRA weight is frozen.
    """
    rank = int(_field(lora_cfg, "rank", 0))
    if rank <= 0:
        return model
    targets = language_model_lora_targets(model, list(_field(lora_cfg, "target_modules", [])))
    peft_cfg = PeftLoraConfig(
        r=rank,
        lora_alpha=int(_field(lora_cfg, "alpha", 16)),
        lora_dropout=float(_field(lora_cfg, "dropout", 0.0)),
        target_modules=targets,
        task_type=TaskType.CAUSAL_LM,
    )
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()  # gradient checkpointing with frozen embeddings needs it
    return get_peft_model(model, peft_cfg)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold the LoRA weights into the base weights and return the plain Hugging Face model (in place)."""
    if isinstance(model, PeftModel):
        return model.merge_and_unload()
    return model


def merged_state_dict(peft_model: nn.Module) -> dict[str, torch.Tensor]:
    """The base model's state dict with LoRA merged in, under the base model's own key names.

    The live model is merged, copied and unmerged again, so training can go on; tied tensors stay tied.
    """
    peft_model.merge_adapter()
    try:
        copies: dict[int, torch.Tensor] = {}
        state: dict[str, torch.Tensor] = {}
        for key, value in peft_model.get_base_model().state_dict().items():
            if "lora_" in key:
                continue
            ptr = value.data_ptr()
            if ptr not in copies:
                copies[ptr] = value.detach().clone()
            state[key.replace(".base_layer.", ".")] = copies[ptr]
        return state
    finally:
        peft_model.unmerge_adapter()
