"""Cutting responses at eos and decoding them with the reasoning tags kept, on the tiny model's real tokenizer."""

from __future__ import annotations

import pytest
from tokenizers import AddedToken

from openrlhf.models.loading import load_tokenizer
from openrlhf.rollout.decoding import decode_response, eos_token_ids, trim_at_eos, vision_placeholder_ids

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
RESPONSE = "<think>3 plus 4 is 7</think><answer>7</answer>"


@pytest.fixture()
def tokenizer(tiny_lm_path):
    return load_tokenizer(tiny_lm_path)


def test_trim_at_eos_keeps_the_first_eos_and_drops_the_padding():
    assert trim_at_eos([5, 6, 9, 0, 0], eos_ids=[9, 0]) == ([5, 6, 9], "stop")
    assert trim_at_eos([5, 0, 9, 9], eos_ids=[9, 0]) == ([5, 0], "stop")
    assert trim_at_eos([5, 6, 7], eos_ids=[9]) == ([5, 6, 7], "length")
    assert trim_at_eos([], eos_ids=[9]) == ([], "length")


def test_eos_ids_merge_generation_config_and_tokenizer(tokenizer):
    class GenConfig:
        eos_token_id = [11, tokenizer.eos_token_id]

    assert eos_token_ids(tokenizer, GenConfig()) == [11, tokenizer.eos_token_id]
    assert eos_token_ids(tokenizer, None) == [tokenizer.eos_token_id]


def test_decode_drops_chat_markers_and_keeps_tags(tokenizer):
    ids = tokenizer(RESPONSE + "<|im_end|><|endoftext|>", add_special_tokens=False)["input_ids"]
    assert decode_response(tokenizer, ids) == RESPONSE


def test_decode_keeps_tags_even_when_the_tokenizer_marks_them_special(tokenizer):
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in TAGS], special_tokens=True)
    ids = tokenizer(RESPONSE + "<|im_end|>", add_special_tokens=False)["input_ids"]
    # What plain skip_special_tokens=True would do (and why it is not used):
    assert "<think>" not in tokenizer.decode(ids, skip_special_tokens=True)
    assert decode_response(tokenizer, ids) == RESPONSE


def test_vision_placeholder_ids_are_the_tokenizers_own_and_absent_ones_are_skipped(tokenizer):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    ids = vision_placeholder_ids(tokenizer)
    assert [tokenizer.convert_ids_to_tokens(i) for i in ids] == ["<|image_pad|>", "<|video_pad|>"]
    plain = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]")), unk_token="[UNK]"
    )
    assert vision_placeholder_ids(plain) == []  # a text-only tokenizer maps them to unk: nothing to ban
