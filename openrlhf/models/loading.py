"""Load and save language and vision-language models: one code path for tiny and real checkpoints.

Everything goes through ``from_pretrained`` on a local checkpoint directory; the model class comes from
the config (a ``vision_config`` means an image-text-to-text model such as Qwen2.5-VL, anything else is a
causal LM). LoRA helpers live in :mod:`openrlhf.models.lora` and are re-exported here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)

from openrlhf.models.lora import apply_lora, merge_lora, merged_state_dict
from openrlhf.models.processor import QwenVLImageTextProcessor
from openrlhf.utils.errors import UserError

__all__ = [
    "ModelLoadError",
    "apply_lora",
    "freeze_vision_tower",
    "is_vision_model",
    "load_config",
    "load_model",
    "load_processor",
    "load_tokenizer",
    "merge_lora",
    "save_pretrained_all",
    "unwrap_model",
    "vision_tower",
]

# Vision-language families whose processor is built as QwenVLImageTextProcessor (no video slot).
QWEN_VL_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(UserError):
    """A checkpoint that cannot be loaded; the message names the path and what is missing."""


def _checkpoint_dir(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelLoadError(
            f"model path {str(path)!r} is not a directory: pass a local checkpoint folder "
            "(hub ids cannot be downloaded here; build a tiny one with `openrlhf-tiny --kind lm --out DIR`)"
        )
    if not (p / "config.json").is_file():
        raise ModelLoadError(f"model path {str(p)!r} has no config.json: not a Hugging Face checkpoint folder")
    return p


def load_config(path: str | os.PathLike, trust_remote_code: bool = False) -> PretrainedConfig:
    return AutoConfig.from_pretrained(_checkpoint_dir(path), trust_remote_code=trust_remote_code)


def is_vision_model(path_or_config: str | os.PathLike | PretrainedConfig) -> bool:
    """True when the config has a vision tower (``vision_config``), e.g. Qwen2.5-VL."""
    config = path_or_config if isinstance(path_or_config, PretrainedConfig) else load_config(path_or_config)
    return getattr(config, "vision_config", None) is not None


def load_tokenizer(path: str | os.PathLike, padding_side: str = "left", trust_remote_code: bool = False):
    """The checkpoint's tokenizer with ``padding_side`` set (left for generation); pad falls back to eos."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelLoadError(f"tokenizer path {str(path)!r} is not a directory")
    tokenizer = AutoTokenizer.from_pretrained(p, padding_side=padding_side, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError(f"tokenizer at {str(p)!r} has neither a pad token nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _read_processor_chat_template(path: Path) -> str | None:
    """A processor-level chat template (chat_template.json, as Qwen2.5-VL ships), if any."""
    json_file = path / "chat_template.json"
    if json_file.is_file():
        try:
            return json.loads(json_file.read_text())["chat_template"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise ModelLoadError(f"{json_file}: expected a JSON object with a 'chat_template' key ({exc})") from None
    return None


def load_processor(
    path: str | os.PathLike,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    trust_remote_code: bool = False,
):
    """The multimodal processor of a vision-language checkpoint, or None for a text-only model.

    Qwen2-VL / Qwen2.5-VL get :class:`QwenVLImageTextProcessor` (image processor + left-padding
    tokenizer, no video processor); other families go through ``AutoProcessor``. ``min_pixels`` /
    ``max_pixels`` override the image processor's resize bounds.
    """
    p = _checkpoint_dir(path)
    config = load_config(p, trust_remote_code)
    if not is_vision_model(config):
        return None
    if min_pixels is not None and max_pixels is not None and min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
    pixel_kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    if config.model_type in QWEN_VL_MODEL_TYPES:
        if not (p / "preprocessor_config.json").is_file() and not (p / "processor_config.json").is_file():
            raise ModelLoadError(f"vision model at {str(p)!r} has no preprocessor_config.json (image processor)")
        image_processor = AutoImageProcessor.from_pretrained(p, **pixel_kwargs)
        tokenizer = load_tokenizer(p, "left", trust_remote_code)
        chat_template = _read_processor_chat_template(p) or tokenizer.chat_template
        return QwenVLImageTextProcessor(
            image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template
        )
    processor = AutoProcessor.from_pretrained(p, trust_remote_code=trust_remote_code, **pixel_kwargs)
    if getattr(processor, "image_processor", None) is None:
        raise ModelLoadError(
            f"AutoProcessor for {str(p)!r} (model_type {config.model_type!r}) returned {type(processor).__name__}, "
            "which has no image processor"
        )
    return processor


def _resolve_dtype(dtype: str | torch.dtype, device: str | torch.device | None) -> str | torch.dtype:
    """'auto' keeps the checkpoint's dtype on accelerators and uses float32 on CPU (bf16 matmuls are slow there)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        on_cpu = torch.device(device).type == "cpu" if device is not None else not torch.cuda.is_available()
        return torch.float32 if on_cpu else "auto"
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of 'auto', {', '.join(map(repr, _DTYPES))}; got {dtype!r}")
    return _DTYPES[dtype]


def load_model(
    path: str | os.PathLike,
    *,
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
    attn_implementation: str = "auto",
    device: str | torch.device | None = None,
) -> PreTrainedModel:
    """A causal LM, or an image-text-to-text model (Qwen2.5-VL) when the config has a vision tower.

    ``attn_implementation='auto'`` lets transformers choose (sdpa where available). For ZeRO-3 create
    ``HfDeepSpeedConfig`` before calling this, as transformers documents.
    """
    p = _checkpoint_dir(path)
    config = load_config(p, trust_remote_code)
    auto_class = AutoModelForImageTextToText if is_vision_model(config) else AutoModelForCausalLM
    kwargs: dict[str, Any] = {"dtype": _resolve_dtype(dtype, device), "trust_remote_code": trust_remote_code}
    if attn_implementation != "auto":
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = auto_class.from_pretrained(p, **kwargs)
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise ModelLoadError(
                f"{str(p)!r}: model_type {config.model_type!r} has no {auto_class.__name__} class ({exc})"
            ) from None
        raise
    if device is not None:
        model = model.to(device)
    return model


def unwrap_model(model: nn.Module) -> nn.Module:
    """The Hugging Face model inside DeepSpeed / DDP (``.module``) and peft (``get_base_model()``) wrappers."""
    seen = 0
    while seen < 8:
        seen += 1
        if hasattr(model, "get_base_model") and callable(model.get_base_model):
            model = model.get_base_model()
        elif isinstance(getattr(model, "module", None), nn.Module):
            model = model.module
        else:
            break
    return model


def vision_tower(model: nn.Module) -> tuple[str, nn.Module] | None:
    """(qualified name, module) of the vision encoder, or None for a text-only model."""
    hf_model = unwrap_model(model)
    for holder_name, holder in (("", hf_model), ("model.", getattr(hf_model, "model", None))):
        if holder is None:
            continue
        for attr in ("visual", "vision_tower", "vision_model"):
            module = getattr(holder, attr, None)
            if isinstance(module, nn.Module):
                return holder_name + attr, module
    return None


def freeze_vision_tower(model: nn.Module) -> int:
    """Stop gradients into the vision encoder (including its patch merger); returns how many parameters froze."""
    found = vision_tower(model)
    if found is None:
        raise ValueError(
            f"freeze_vision_tower: {type(unwrap_model(model)).__name__} has no vision tower "
            "(actor.freeze_vision_tower applies to vision-language models only)"
        )
    frozen = 0
    for param in found[1].parameters():
        param.requires_grad_(False)
        frozen += param.numel()
    return frozen


def save_pretrained_all(
    model: nn.Module,
    tokenizer: Any,
    processor: Any | None,
    out_dir: str | os.PathLike,
    *,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint folder that ``load_model`` / ``load_processor`` (and vLLM) read back.

    A peft model is saved with its LoRA merged into the base weights (the live model stays unmerged).
    ``state_dict`` overrides the weights (e.g. gathered from ZeRO-3); it must already be merged.
    The Qwen-VL image processor is written as preprocessor_config.json, as released Qwen2.5-VL folders hold it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf_model = unwrap_model(model)
    peft_model = _peft_model(model)
    if state_dict is None and peft_model is not None:
        state_dict = merged_state_dict(peft_model)
    hf_model.save_pretrained(out, state_dict=state_dict)
    tokenizer.save_pretrained(out)
    if processor is not None:
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is None:
            raise ValueError(f"save_pretrained_all: processor {type(processor).__name__} has no image_processor")
        if isinstance(processor, QwenVLImageTextProcessor):
            # The layout of a released Qwen2.5-VL folder: AutoProcessor picks the standard class by model_type.
            image_processor.save_pretrained(out)
            if processor.chat_template and processor.chat_template != getattr(tokenizer, "chat_template", None):
                (out / "chat_template.json").write_text(json.dumps({"chat_template": processor.chat_template}))
        else:
            processor.save_pretrained(out)
    return out


def _peft_model(model: nn.Module) -> PeftModel | None:
    """The peft model, possibly inside DeepSpeed / DDP wrappers (``.module``); None when there is none."""
    for _ in range(8):
        if isinstance(model, PeftModel):
            return model
        inner = model.__dict__.get("_modules", {}).get("module")
        if not isinstance(inner, nn.Module):
            return None
        model = inner
    return None
