"""Tiny offline checkpoints: a Qwen2 causal LM (~3 M parameters) and a Qwen2.5-VL (~2 M parameters).

Both are random-initialised from a config with a fixed seed and saved with ``save_pretrained`` next to a
locally trained tokenizer (:mod:`openrlhf.models.tiny_tokenizer`), so they load through the same
``from_pretrained`` path as a real checkpoint folder. The VLM folder also holds a Qwen2-VL image
processor (patch 14, merge 2: a 56x56 image gives 4 image tokens, 112x112 gives 16).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import tokenizers
import torch
import transformers
from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2Config, Qwen2ForCausalLM
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from openrlhf.models import tiny_tokenizer
from openrlhf.models.tiny_tokenizer import PAD_TOKEN, train_tiny_tokenizer

VOCAB_SIZE = 2048
MAX_POSITIONS = 4096
TINY_MIN_PIXELS = 56 * 56
TINY_MAX_PIXELS = 112 * 112

TINY_LM = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=MAX_POSITIONS,
    rope_theta=10000.0,
    tie_word_embeddings=True,
)
TINY_VLM_TEXT = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=192,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=3,  # head_dim 64 = 2 * sum(mrope_section)
    num_key_value_heads=1,
    max_position_embeddings=MAX_POSITIONS,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 12, 12]},
)
TINY_VLM_VISION = dict(
    depth=2,
    hidden_size=64,
    intermediate_size=128,
    num_heads=4,
    out_hidden_size=TINY_VLM_TEXT["hidden_size"],
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[1],
)


def builder_version() -> str:
    """A short hash of everything that decides the tiny checkpoints' bytes (for on-disk caches)."""
    digest = hashlib.sha256()
    for module in (tiny_tokenizer, __import__(__name__, fromlist=["x"])):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(f"{transformers.__version__}|{tokenizers.__version__}|{torch.__version__}".encode())
    return digest.hexdigest()[:12]


def _generation_config(tokenizer) -> GenerationConfig:
    eos = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(PAD_TOKEN)]
    return GenerationConfig(bos_token_id=None, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)


def _prepare(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def build_tiny_lm(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny Qwen2 causal LM + tokenizer to ``out_dir``; returns the folder."""
    out = _prepare(out_dir)
    tokenizer = train_tiny_tokenizer(seed=seed, vocab_size=VOCAB_SIZE, model_max_length=MAX_POSITIONS)
    config = Qwen2Config(
        **TINY_LM,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = _generation_config(tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_vlm(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny Qwen2.5-VL + tokenizer + image processor to ``out_dir``; returns the folder."""
    out = _prepare(out_dir)
    tokenizer = train_tiny_tokenizer(seed=seed, vocab_size=VOCAB_SIZE, model_max_length=MAX_POSITIONS)
    ids = dict(
        zip(
            ("vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id"),
            tokenizer.convert_tokens_to_ids(["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]),
            strict=True,
        )
    )
    text_config = dict(
        TINY_VLM_TEXT, bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    config = Qwen2_5_VLConfig(
        text_config=text_config, vision_config=dict(TINY_VLM_VISION), tie_word_embeddings=True, **ids
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = _generation_config(tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=TINY_MIN_PIXELS,
        max_pixels=TINY_MAX_PIXELS,
        patch_size=TINY_VLM_VISION["patch_size"],
        merge_size=TINY_VLM_VISION["spatial_merge_size"],
        temporal_patch_size=TINY_VLM_VISION["temporal_patch_size"],
    )
    image_processor.save_pretrained(out)
    return out


def build_tiny(kind: str, out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """``kind`` is 'lm' or 'vlm'."""
    builders = {"lm": build_tiny_lm, "vlm": build_tiny_vlm}
    if kind not in builders:
        raise ValueError(f"unknown tiny model kind {kind!r} (allowed: 'lm', 'vlm')")
    return builders[kind](out_dir, seed=seed)
