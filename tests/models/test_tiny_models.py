"""The tiny checkpoints build offline, reload through the project's loader, and train/generate on CPU."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from openrlhf.cli.tiny import main as tiny_main
from openrlhf.models.loading import (
    ModelLoadError,
    is_vision_model,
    load_model,
    load_processor,
    load_tokenizer,
)
from openrlhf.models.processor import QwenVLImageTextProcessor
from openrlhf.models.tiny import build_tiny_lm, builder_version
from openrlhf.models.tiny_tokenizer import SPECIAL_TOKENS, TAG_TOKENS, train_tiny_tokenizer
from openrlhf.models.vlm_inputs import encode_prompt

from .helpers import image_prompt, noise_image

TEXTS = [
    "What is 12 + 7? <think>12 plus 7 is 19</think> <answer>19</answer>",
    "<|im_start|>user\nHow many circles are there?<|im_end|>\n<|im_start|>assistant\n<answer>3</answer><|im_end|>",
    "Ünïcödé text, emoji 🙂 and tabs\tand\nnew lines: 3.14159 * 2 = 6.28318",
    '{"bbox_2d": [12, 34, 56, 78], "label": "circle"} <|vision_start|><|image_pad|><|vision_end|>',
    "zyxwv qqq never-seen-words, Antidisestablishmentarianism!",
]


@pytest.fixture(scope="module")
def fresh_tokenizer():
    return train_tiny_tokenizer(seed=0)


def test_tokenizer_ids_survive_save_and_reload(fresh_tokenizer, tiny_lm_path, tmp_path):
    before = [fresh_tokenizer(t)["input_ids"] for t in TEXTS]
    fresh_tokenizer.save_pretrained(tmp_path)
    for reloaded in (AutoTokenizer.from_pretrained(tmp_path), load_tokenizer(tmp_path), load_tokenizer(tiny_lm_path)):
        assert type(reloaded).__name__ == "Qwen2Tokenizer"
        assert [reloaded(t)["input_ids"] for t in TEXTS] == before
        assert len(reloaded) == len(fresh_tokenizer) == 2048
    # and the texts decode back exactly (byte-level BPE loses nothing)
    reloaded = load_tokenizer(tiny_lm_path)
    assert [reloaded.decode(ids) for ids in before] == TEXTS


def test_tags_and_specials_are_single_tokens_and_tags_survive_decoding(tiny_lm_path):
    tok = load_tokenizer(tiny_lm_path)
    for token in SPECIAL_TOKENS + TAG_TOKENS:
        ids = tok(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids) == [token], token
    text = "<think>3 + 4 = 7</think><answer>7</answer>"
    ids = tok("<|im_start|>assistant\n" + text + "<|im_end|><|endoftext|>")["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "assistant\n" + text
    assert tok.decode(ids, skip_special_tokens=False).endswith("<|im_end|><|endoftext|>")


def test_digits_tokenize_one_by_one(tiny_lm_path):
    tok = load_tokenizer(tiny_lm_path)
    pieces = tok.convert_ids_to_tokens(tok("12 + 7 = 19")["input_ids"])
    assert pieces == ["1", "2", "Ġ+", "Ġ", "7", "Ġ=", "Ġ", "1", "9"]


def test_tokenizer_config_padding_eos_and_template(tiny_lm_path):
    tok = load_tokenizer(tiny_lm_path)
    assert tok.padding_side == "left"
    assert tok.pad_token == "<|endoftext|>" and tok.eos_token == "<|im_end|>"
    assert load_tokenizer(tiny_lm_path, padding_side="right").padding_side == "right"
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count."}]},
    ]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Count.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    gen = json.loads((tiny_lm_path / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [tok.eos_token_id, tok.pad_token_id] and gen["pad_token_id"] == tok.pad_token_id


def _batch(tok, texts):
    return tok(texts, return_tensors="pt", padding=True)


def test_lm_loads_and_runs_forward_backward_generate(tiny_lm_path):
    assert not is_vision_model(tiny_lm_path)
    assert load_processor(tiny_lm_path) is None
    model = load_model(tiny_lm_path, device="cpu")
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.dtype == torch.float32
    assert 2.5e6 < sum(p.numel() for p in model.parameters()) < 3.5e6
    tok = load_tokenizer(tiny_lm_path)
    batch = _batch(tok, ["1 + 2 = 3", "What is 12 * 12?"])
    out = model(**batch, labels=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100))
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    torch.manual_seed(0)
    generated = model.generate(**batch, max_new_tokens=8, do_sample=True)
    assert generated.shape[0] == 2 and 1 <= generated.shape[1] - batch["input_ids"].shape[1] <= 8
    assert int(generated.max()) < len(tok)


def test_vlm_loads_and_runs_forward_backward_generate(tiny_vlm_path):
    assert is_vision_model(tiny_vlm_path)
    model = load_model(tiny_vlm_path)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert 1.5e6 < sum(p.numel() for p in model.parameters()) < 3e6
    processor = load_processor(tiny_vlm_path)
    enc = encode_prompt(processor, image_prompt(processor.tokenizer, "How many circles?"), [noise_image(0, 70, 98)])
    inputs = {k: v for k, v in enc.items() if k != "image_counts"}
    out = model(**inputs, labels=enc["input_ids"])
    out.loss.backward()
    assert model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.lm_head.weight.grad.abs().sum() > 0
    torch.manual_seed(0)
    generated = model.generate(**inputs, max_new_tokens=6, do_sample=True)
    assert 1 <= generated.shape[1] - enc["input_ids"].shape[1] <= 6


def test_processor_reloads_with_pixel_bounds(tiny_vlm_path, tmp_path):
    processor = load_processor(tiny_vlm_path)
    assert isinstance(processor, QwenVLImageTextProcessor)
    assert processor.merge_size == 2 and processor.tokenizer.padding_side == "left"
    text = image_prompt(processor.tokenizer, "Describe.")
    image = noise_image(1, 112, 112)
    small = encode_prompt(processor, text, [image])
    assert small["image_grid_thw"].tolist() == [[1, 8, 8]]  # 112x112 -> 8x8 patches -> 16 tokens
    assert int((small["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum()) == 16
    big = encode_prompt(load_processor(tiny_vlm_path, min_pixels=224 * 224, max_pixels=224 * 224), text, [image])
    assert big["image_grid_thw"].tolist() == [[1, 16, 16]]
    with pytest.raises(ValueError, match="min_pixels"):
        load_processor(tiny_vlm_path, min_pixels=5000, max_pixels=4000)


def test_load_errors_name_the_path(tmp_path, tiny_lm_path):
    with pytest.raises(ModelLoadError, match="missing.*not a directory"):
        load_model(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path)
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_tokenizer(tmp_path / "missing")
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_model(tiny_lm_path, dtype="float8")
    assert load_model(tiny_lm_path, dtype="bfloat16").dtype == torch.bfloat16


def test_build_is_deterministic_and_cli_refuses_non_empty_folders(tiny_lm_path, tmp_path):
    out = build_tiny_lm(tmp_path / "again", seed=0)
    a, b = load_file(out / "model.safetensors"), load_file(tiny_lm_path / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len(builder_version()) == 12
    assert tiny_main(["--kind", "lm", "--out", str(out)]) == 2
    assert tiny_main(["--kind", "vlm", "--out", str(tmp_path / "vlm")]) == 0
    assert isinstance(load_processor(tmp_path / "vlm"), QwenVLImageTextProcessor)
