"""Prompt building: a Sample's messages -> the text the policy sees, through the model's chat template.

prompt_messages(sample, data_cfg):
  1. ``data.system_prompt`` becomes a leading system message, unless the row brings its own system message
     (a row's own system message is data and wins).
  2. ``data.few_shot`` example turns (user / assistant pairs, as chat messages) go before the row's own
     messages, after any system message: small instruct models follow a format shown in earlier turns far
     more often than one described in the system prompt (SmolLM2-135M: tags in 11 of 16 greedy answers, against
     0 of 16 with the same example in the system prompt or the user message).
  3. ``data.task_suffix`` is appended to the text of the last user message (to its last text part when the
     content is a list of parts; a text part is added at the end when it has none). A suffix that starts with whitespace is
     appended as it is, otherwise it is joined with one space. ``task_suffix: r1`` names the standard R1
     instruction R1_THINK_ANSWER_SUFFIX.
build_prompt_text(sample, tokenizer_or_processor, data_cfg) applies the chat template of the tokenizer or the
processor to those messages with ``add_generation_prompt=True``. Image parts stay ``{"type": "image"}``: the
processor's template expands them into the model's vision tokens.
"""

from __future__ import annotations

import copy
from typing import Any

from openrlhf.data.sample import Sample
from openrlhf.utils.errors import UserError

# R1-Reward's comparison question, as in the project's R1-Reward rows (examples/data/r1_reward.jsonl,
# scripts/make_example_data.py), the reward-model evaluation (openrlhf/eval/reward_model.py) and the reward
# service's generative_rm component: a judge is evaluated and used on the prompt it was trained on. The one copy
# lives in remote_rm.pairwise (the reward service ships without openrlhf); re-exported here.
from remote_rm.pairwise import R1_REWARD_JUDGE_PROMPT, r1_reward_judge_prompt  # noqa: F401

R1_THINK_ANSWER_SUFFIX = (
    "First think about the question step by step inside <think> </think> tags, "
    "then give only the final answer inside <answer> </answer> tags."
)

# Short names a config may give as data.task_suffix instead of the full text.
NAMED_SUFFIXES = {"r1": R1_THINK_ANSWER_SUFFIX}


def resolve_task_suffix(text: str) -> str:
    """``r1`` -> R1_THINK_ANSWER_SUFFIX; any other text is the suffix itself."""
    return NAMED_SUFFIXES.get(text.strip(), text) if text else ""


def _join(text: str, suffix: str) -> str:
    if suffix[:1].isspace() or not text:
        return text + suffix
    return text.rstrip() + " " + suffix


def append_suffix(messages: list[dict[str, Any]], suffix: str) -> None:
    """Append ``suffix`` to the last user message in place."""
    if not suffix:
        return
    user_turns = [m for m in messages if m["role"] == "user"]
    if not user_turns:
        raise ValueError("cannot append the task suffix: the prompt has no user message")
    last = user_turns[-1]
    content = last["content"]
    if isinstance(content, str):
        last["content"] = _join(content, suffix)
        return
    text_parts = [p for p in content if p.get("type") == "text"]
    if text_parts:
        text_parts[-1]["text"] = _join(text_parts[-1]["text"], suffix)
    else:
        content.append({"type": "text", "text": suffix.lstrip()})


def prompt_messages(sample: Sample, data_cfg: Any) -> list[dict[str, Any]]:
    """The sample's messages with the system prompt and task suffix of ``data_cfg`` (a deep copy)."""
    messages = copy.deepcopy(sample.messages)
    few_shot = [dict(turn) for turn in getattr(data_cfg, "few_shot", None) or []]
    if few_shot:
        at = 1 if messages and messages[0]["role"] == "system" else 0
        messages[at:at] = few_shot
    if data_cfg.system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": data_cfg.system_prompt})
    append_suffix(messages, resolve_task_suffix(data_cfg.task_suffix))
    return messages


def build_prompt_text(sample: Sample, tokenizer_or_processor: Any, data_cfg: Any) -> str:
    """Chat-templated prompt text, ending with the template's generation prompt (assistant turn opened)."""
    messages = prompt_messages(sample, data_cfg)
    if getattr(tokenizer_or_processor, "chat_template", None) is None:
        name = type(tokenizer_or_processor).__name__
        raise UserError(f"{name} has no chat template: set one (tokenizer.chat_template) or use an instruct model")
    text = tokenizer_or_processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected the prompt text")
    return text
