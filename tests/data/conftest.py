"""Fixtures of the data tests: the example-data script and a real chat tokenizer built here."""

from __future__ import annotations

import pytest

from .helpers import load_example_script


@pytest.fixture(scope="session")
def example_script():
    return load_example_script()


# A ChatML template that renders image parts as Qwen2-VL's vision tokens, as Qwen's own templates do.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<unk>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"]


@pytest.fixture(scope="session")
def chat_tokenizer():
    """A real fast tokenizer trained here (WordLevel over whitespace/punctuation) with a ChatML template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        "system user assistant Answer briefly . What is 7 + 5 ? What colour is the square ? red blue",
        "First think about the question step by step inside < think > </ think > tags , then give only the final",
        "answer inside < answer > </ answer > tags . Solve it . Be short . 12",
    ]
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split("\n", "isolated"), pre_tokenizers.Whitespace()]
    )
    tokenizer.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
        chat_template=CHATML_TEMPLATE,
    )
