"""Prompt text through a real tokenizer's chat template: system prompt, task suffix, generation prompt."""

from __future__ import annotations

import copy

import pytest

from openrlhf.data import R1_THINK_ANSWER_SUFFIX, Sample, build_prompt_text, load_samples, prompt_messages

from .helpers import EXAMPLES, data_cfg


def text_sample() -> Sample:
    return Sample(messages=[{"role": "user", "content": "What is 7 + 5?"}], label="12")


def test_chat_template_with_generation_prompt(chat_tokenizer):
    text = build_prompt_text(text_sample(), chat_tokenizer, data_cfg())
    assert text == "<|im_start|>user\nWhat is 7 + 5?<|im_end|>\n<|im_start|>assistant\n"


def test_system_prompt_and_r1_suffix(chat_tokenizer):
    cfg = data_cfg(system_prompt="Answer briefly.", task_suffix=R1_THINK_ANSWER_SUFFIX)
    text = build_prompt_text(text_sample(), chat_tokenizer, cfg)
    assert text == (
        "<|im_start|>system\nAnswer briefly.<|im_end|>\n"
        f"<|im_start|>user\nWhat is 7 + 5? {R1_THINK_ANSWER_SUFFIX}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "<think> </think>" in R1_THINK_ANSWER_SUFFIX and "<answer> </answer>" in R1_THINK_ANSWER_SUFFIX


def test_named_suffix_and_whitespace_rule():
    assert prompt_messages(text_sample(), data_cfg(task_suffix="r1"))[0]["content"].endswith(R1_THINK_ANSWER_SUFFIX)
    assert (
        prompt_messages(text_sample(), data_cfg(task_suffix="\nSolve it."))[0]["content"] == "What is 7 + 5?\nSolve it."
    )


def test_rows_own_system_message_wins():
    sample = Sample(messages=[{"role": "system", "content": "Row says."}, {"role": "user", "content": "Q"}])
    messages = prompt_messages(sample, data_cfg(system_prompt="Config says."))
    assert [m["content"] for m in messages] == ["Row says.", "Q"]


def test_suffix_goes_to_the_last_user_message_and_sample_is_untouched():
    sample = Sample(
        messages=[
            {"role": "user", "content": "First."},
            {"role": "assistant", "content": "Ok."},
            {"role": "user", "content": [{"type": "text", "text": "Look:"}, {"type": "image"}]},
        ],
        images=["/x.png"],
    )
    before = copy.deepcopy(sample.messages)
    messages = prompt_messages(sample, data_cfg(task_suffix="Be short."))
    assert messages[0]["content"] == "First."
    assert messages[2]["content"] == [{"type": "text", "text": "Look: Be short."}, {"type": "image"}]
    assert sample.messages == before
    only_image = Sample(messages=[{"role": "user", "content": [{"type": "image"}]}], images=["/x.png"])
    assert prompt_messages(only_image, data_cfg(task_suffix="Be short."))[0]["content"][-1] == {
        "type": "text",
        "text": "Be short.",
    }


def test_multi_image_prompt_keeps_image_order(chat_tokenizer):
    sample = load_samples([str(EXAMPLES / "omnirl_mixed.json")], data_cfg()).samples[4]
    text = build_prompt_text(sample, chat_tokenizer, data_cfg(task_suffix="r1"))
    vision = "<|vision_start|><|image_pad|><|vision_end|>"
    body = text.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
    assert body.startswith(vision + "has one shape and" + vision + "has three.")
    assert body.endswith(R1_THINK_ANSWER_SUFFIX)


def test_prompt_text_tokenizes_to_known_ids(chat_tokenizer):
    text = build_prompt_text(text_sample(), chat_tokenizer, data_cfg(task_suffix="r1"))
    ids = chat_tokenizer(text, add_special_tokens=False)["input_ids"]
    unk = chat_tokenizer.convert_tokens_to_ids("<unk>")
    assert unk not in ids  # every word of template, question and suffix is in the trained vocabulary
    assert ids[-2:] == chat_tokenizer.convert_tokens_to_ids(["<|im_start|>", "assistant"])


def test_missing_chat_template_is_a_clear_error(chat_tokenizer):
    tokenizer = copy.deepcopy(chat_tokenizer)
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="has no chat template"):
        build_prompt_text(text_sample(), tokenizer, data_cfg())


def test_suffix_without_user_message_is_an_error():
    with pytest.raises(ValueError, match="no user message"):
        prompt_messages(Sample(messages=[{"role": "system", "content": "s"}]), data_cfg(task_suffix="x"))


def test_few_shot_turns_go_after_the_system_message_and_the_suffix_on_the_real_question(chat_tokenizer):
    shots = [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "<think>2 + 2 = 4</think><answer>4</answer>"},
    ]
    cfg = data_cfg(system_prompt="Answer briefly.", task_suffix="Use tags.", few_shot=shots)
    text = build_prompt_text(text_sample(), chat_tokenizer, cfg)
    assert text == (
        "<|im_start|>system\nAnswer briefly.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>2 + 2 = 4</think><answer>4</answer><|im_end|>\n"
        "<|im_start|>user\nWhat is 7 + 5? Use tags.<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize(
    "shots",
    [[{"role": "assistant", "content": "x"}], [{"role": "user", "content": "q"}], [{"role": "tool", "content": "x"}]],
)
def test_few_shot_turns_are_checked_at_load(shots):
    from pydantic import ValidationError

    from openrlhf.config import DataConfig

    with pytest.raises(ValidationError, match="few_shot"):
        DataConfig(few_shot=shots)
