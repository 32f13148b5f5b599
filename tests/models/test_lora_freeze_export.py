"""Freezing the vision tower, LoRA on the language model only, and merged export that reloads."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from openrlhf.config import LoraConfig
from openrlhf.models.loading import (
    apply_lora,
    freeze_vision_tower,
    load_model,
    load_processor,
    load_tokenizer,
    merge_lora,
    save_pretrained_all,
    unwrap_model,
)
from openrlhf.models.logprobs import compute_token_log_probs
from openrlhf.models.processor import QwenVLImageTextProcessor
from openrlhf.models.vlm_inputs import encode_prompt, take_multimodal

from .helpers import image_prompt, shapes_image


def _vlm_inputs(processor):
    text = image_prompt(processor.tokenizer, "Which color?") + "<answer>green</answer>"
    return encode_prompt(processor, text, [shapes_image("green")])


def _score(model, enc):
    return compute_token_log_probs(
        model, enc["input_ids"], enc["attention_mask"], multimodal=take_multimodal(enc), num_response_tokens=6
    )[0]


def test_freeze_vision_tower_stops_its_gradients_only(tiny_vlm_path, tiny_lm_path):
    model = load_model(tiny_vlm_path)
    processor = load_processor(tiny_vlm_path)
    frozen = freeze_vision_tower(model)
    assert frozen == sum(p.numel() for p in model.model.visual.parameters()) > 0
    _score(model, _vlm_inputs(processor)).sum().backward()
    assert all(p.grad is None for p in model.model.visual.parameters())
    assert model.model.language_model.layers[0].mlp.up_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="no vision tower"):
        freeze_vision_tower(load_model(tiny_lm_path))


def test_lora_rank_zero_is_a_no_op(tiny_lm_path):
    model = load_model(tiny_lm_path)
    assert apply_lora(model, LoraConfig(rank=0)) is model
    with pytest.raises(ValueError, match="matched no Linear layer"):
        apply_lora(model, LoraConfig(rank=4, target_modules=["no_such_proj"]))


def test_vlm_lora_targets_the_language_model_and_exports_merged(tiny_vlm_path, tmp_path):
    processor = load_processor(tiny_vlm_path)
    enc = _vlm_inputs(processor)
    base = load_model(tiny_vlm_path).eval()
    with torch.no_grad():
        base_lp = _score(base, enc)
    cfg = LoraConfig(rank=4, alpha=8, target_modules=["q_proj", "v_proj", "gate_proj"])
    model = apply_lora(base, cfg).eval()
    lora_names = [name for name, _ in model.named_parameters() if "lora_" in name]
    assert lora_names and not any(".visual." in name for name in lora_names)  # vision MLPs have gate_proj too
    assert any("language_model" in name and "gate_proj" in name for name in lora_names)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(lora_names)
    with torch.no_grad():
        torch.testing.assert_close(_score(model, enc), base_lp, atol=1e-6, rtol=0)  # B = 0 at start
        gen = torch.Generator().manual_seed(0)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
        lora_lp = _score(model, enc)
    assert (lora_lp - base_lp).abs().max() > 1e-4

    out = save_pretrained_all(model, processor.tokenizer, processor, tmp_path / "export")
    saved = load_file(out / "model.safetensors")
    assert not any("lora" in key or "base_layer" in key for key in saved)
    with torch.no_grad():
        torch.testing.assert_close(_score(model, enc), lora_lp, atol=1e-6, rtol=0)  # the live model is unmerged
        reloaded = load_model(out).eval()
        torch.testing.assert_close(_score(reloaded, enc), lora_lp, atol=1e-5, rtol=0)
        merged = merge_lora(model)
        assert type(merged).__name__ == "Qwen2_5_VLForConditionalGeneration"
        torch.testing.assert_close(_score(merged, enc), lora_lp, atol=1e-5, rtol=0)
    reloaded_processor = load_processor(out)
    assert isinstance(reloaded_processor, QwenVLImageTextProcessor)
    again = encode_prompt(
        reloaded_processor, image_prompt(reloaded_processor.tokenizer, "Which color?"), [shapes_image("red")]
    )
    assert again["image_grid_thw"].tolist() == [[1, 6, 6]]


def test_lm_lora_export_reloads_with_tokenizer(tiny_lm_path, tmp_path):
    tok = load_tokenizer(tiny_lm_path)
    ids = torch.tensor([tok("12 + 7 = 19")["input_ids"]])
    mask = torch.ones_like(ids)
    model = apply_lora(load_model(tiny_lm_path), LoraConfig(rank=2, alpha=4))
    assert unwrap_model(model) is model.get_base_model()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.02)
        expected, _ = compute_token_log_probs(model, ids, mask)
    wrapped = torch.nn.Module()  # what DeepSpeed / DDP look like from outside: the model under .module
    wrapped.module = model
    assert unwrap_model(wrapped) is model.get_base_model()
    out = save_pretrained_all(wrapped, tok, None, tmp_path / "lm")
    with torch.no_grad():
        got, _ = compute_token_log_probs(load_model(out), ids, mask)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert load_tokenizer(out)("12 + 7 = 19")["input_ids"] == ids[0].tolist()
    assert load_processor(out) is None
