"""Model size and shapes for the planner: a size string, a checkpoint's config.json, or the meta device.

Pure: :func:`parse_model_size`, :func:`model_from_size`, :func:`shapes_from_config`, :func:`lora_params`.
Not pure (imports torch and transformers): :func:`count_parameters` and :func:`model_from_checkpoint`,
which build the model from config.json alone on the meta device (no weights are read or allocated).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


@dataclass(frozen=True)
class ModelSpec:
    """Parameter count and the shapes the activation and KV-cache estimates need.

    ``vision_params``: parameters of a vision tower (Qwen2.5-VL), part of ``num_params``.
    """

    num_params: float
    hidden_size: int
    num_layers: int
    vocab_size: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    head_dim: int
    vision_params: float = 0.0
    source: str = ""

    @property
    def embedding_params(self) -> float:
        """V·h: one embedding (or LM-head) matrix."""
        return float(self.vocab_size * self.hidden_size)

    def describe(self) -> str:
        text = f"{format_count(self.num_params)} parameters"
        if self.vision_params:
            text += f" ({format_count(self.vision_params)} in the vision tower)"
        return (
            f"{text}; h={self.hidden_size}, layers={self.num_layers}, vocab={self.vocab_size}, "
            f"heads={self.num_heads}/{self.num_kv_heads} kv, ffn={self.intermediate_size} [{self.source}]"
        )


# Rule-of-thumb shapes for a size string: the entry nearest in log(parameters) is used (public configs of
# SmolLM2-135M and the Qwen2.5 family: hidden, layers, heads, kv heads, FFN width, vocab).
REFERENCE_SHAPES: dict[str, tuple[float, int, int, int, int, int, int]] = {
    "SmolLM2-135M": (1.35e8, 576, 30, 9, 3, 1536, 49152),
    "Qwen2.5-0.5B": (4.94e8, 896, 24, 14, 2, 4864, 151936),
    "Qwen2.5-1.5B": (1.54e9, 1536, 28, 12, 2, 8960, 151936),
    "Qwen2.5-3B": (3.09e9, 2048, 36, 16, 2, 11008, 151936),
    "Qwen2.5-7B": (7.62e9, 3584, 28, 28, 4, 18944, 152064),
    "Qwen2.5-14B": (1.48e10, 5120, 48, 40, 8, 13824, 152064),
    "Qwen2.5-32B": (3.28e10, 5120, 64, 40, 8, 27648, 152064),
    "Qwen2.5-72B": (7.27e10, 8192, 80, 64, 8, 29568, 152064),
}


def format_count(n: float) -> str:
    """7.62e9 -> '7.62B', 1.35e8 -> '135M', 2.9e6 -> '2.90M'."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f}{suffix}" if value >= 100 else f"{value:.3g}{suffix}"
    return f"{n:.0f}"


def parse_model_size(text: str) -> float:
    """'7B' -> 7e9, '1.5B' -> 1.5e9, '135M' -> 1.35e8, '3e9' -> 3e9 (suffixes K, M, B or G, T; any case)."""
    raw = str(text).strip()
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)", raw)
    if not match:
        raise ValueError(f"plan.model_size {raw!r}: expected a parameter count such as 7B, 1.5B, 135M or 3e9")
    value = float(match.group(1)) * _SUFFIX[match.group(2).upper()]
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"plan.model_size {raw!r}: must be at least one parameter")
    return value


def nearest_reference(num_params: float) -> str:
    """The :data:`REFERENCE_SHAPES` entry nearest to ``num_params`` in log scale."""
    return min(REFERENCE_SHAPES, key=lambda k: abs(math.log(num_params / REFERENCE_SHAPES[k][0])))


def model_from_size(num_params: float, shapes: dict[str, Any] | None = None, source: str = "") -> ModelSpec:
    """A :class:`ModelSpec` of ``num_params`` parameters; shapes from ``shapes`` (a checkpoint's
    :func:`shapes_from_config`) or else the nearest :data:`REFERENCE_SHAPES` entry (rule of thumb)."""
    if shapes is None:
        name = nearest_reference(num_params)
        _, h, layers, heads, kv, ffn, vocab = REFERENCE_SHAPES[name]
        shapes = {
            "hidden_size": h,
            "num_layers": layers,
            "num_heads": heads,
            "num_kv_heads": kv,
            "intermediate_size": ffn,
            "vocab_size": vocab,
            "head_dim": h // heads,
        }
        source = f"{source}; shapes of {name} (rule of thumb)" if source else f"shapes of {name} (rule of thumb)"
    fields = {k: v for k, v in shapes.items() if k in ModelSpec.__dataclass_fields__}
    return ModelSpec(num_params=float(num_params), source=source, **fields)


def shapes_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """Shapes from a config.json mapping (a VLM's language shapes come from ``text_config`` when nested).

    Missing fields fall back to: kv heads = heads, head_dim = hidden / heads, FFN width = 4 h.
    """
    text = config.get("text_config") or {}
    merged = {**config, **text} if isinstance(text, dict) else dict(config)

    def pick(*names: str, default: Any = None) -> Any:
        for name in names:
            if merged.get(name) is not None:
                return merged[name]
        return default

    hidden = pick("hidden_size", "n_embd", "d_model")
    layers = pick("num_hidden_layers", "n_layer", "num_layers")
    vocab = pick("vocab_size")
    if hidden is None or layers is None or vocab is None:
        raise ValueError("config.json has no hidden_size / num_hidden_layers / vocab_size (nor text_config with them)")
    heads = pick("num_attention_heads", "n_head", default=max(1, hidden // 128))
    return {
        "hidden_size": int(hidden),
        "num_layers": int(layers),
        "vocab_size": int(vocab),
        "num_heads": int(heads),
        "num_kv_heads": int(pick("num_key_value_heads", default=heads)),
        "intermediate_size": int(pick("intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)),
        "head_dim": int(pick("head_dim", default=hidden // heads)),
    }


def read_config_json(checkpoint_dir: str | Path) -> dict[str, Any]:
    path = Path(checkpoint_dir).expanduser() / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.json (the planner needs one, or set plan.model_size)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def lora_params(model: ModelSpec, rank: int, target_modules: list[str]) -> float:
    """Adapter parameters of LoRA rank r on the language model's decoder layers.

    Ψ_lora = L · Σ_m r · (d_in(m) + d_out(m)) with q_proj h -> n_h·d, k_proj / v_proj h -> n_kv·d,
    o_proj n_h·d -> h, gate_proj / up_proj h -> I, down_proj I -> h; another module name counts as h -> h.
    """
    if rank <= 0:
        return 0.0
    h, d, i = model.hidden_size, model.head_dim, model.intermediate_size
    dims = {
        "q_proj": (h, model.num_heads * d),
        "k_proj": (h, model.num_kv_heads * d),
        "v_proj": (h, model.num_kv_heads * d),
        "o_proj": (model.num_heads * d, h),
        "gate_proj": (h, i),
        "up_proj": (h, i),
        "down_proj": (i, h),
    }
    per_layer = sum(rank * sum(dims.get(name, (h, h))) for name in set(target_modules))
    return float(model.num_layers * per_layer)


# --------------------------------------------------------------------------- meta device (torch)


def _build_on_meta(checkpoint_dir: str | Path, trust_remote_code: bool = False):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    from openrlhf.models.loading import is_vision_model, load_config

    config = load_config(checkpoint_dir, trust_remote_code=trust_remote_code)
    auto_class = AutoModelForImageTextToText if is_vision_model(config) else AutoModelForCausalLM
    with torch.device("meta"):
        return auto_class.from_config(config, trust_remote_code=trust_remote_code)


def count_parameters(checkpoint_dir: str | Path, trust_remote_code: bool = False) -> int:
    """Parameters of the checkpoint's model, built from its config.json alone on the meta device.

    Ψ = Σ_p numel(p) over ``model.parameters()`` (tied embeddings count once). The class comes from
    :mod:`openrlhf.models.loading`: image-text-to-text when the config has a ``vision_config``, else causal LM.
    """
    model = _build_on_meta(checkpoint_dir, trust_remote_code)
    return int(sum(p.numel() for p in model.parameters()))


def model_from_checkpoint(checkpoint_dir: str | Path, trust_remote_code: bool = False) -> ModelSpec:
    """A :class:`ModelSpec` counted on the meta device, shapes from config.json, vision tower counted apart."""
    from openrlhf.models.loading import vision_tower

    model = _build_on_meta(checkpoint_dir, trust_remote_code)
    total = sum(p.numel() for p in model.parameters())
    tower = vision_tower(model)
    vision = sum(p.numel() for p in tower[1].parameters()) if tower is not None else 0
    shapes = shapes_from_config(read_config_json(checkpoint_dir))
    spec = model_from_size(total, shapes, source=f"counted from {Path(checkpoint_dir) / 'config.json'}")
    return replace(spec, vision_params=float(vision))
