"""Format rewards: is the response laid out as ``<think>...</think><answer>...</answer>``?

All checks are index scans (no backtracking regex), linear in the response length.
"""

from __future__ import annotations

import re

from remote_rm.rewards.boxes import parse_boxes
from remote_rm.rewards.extract import tagged

_SPACES = re.compile(r"\s*")


def strict_format(response: str, think_tag: str = "think", answer_tag: str = "answer", nonempty: bool = True) -> bool:
    """Strict layout: ``<think>R</think><answer>A</answer>`` and nothing else.

    True iff, after stripping surrounding whitespace, the text starts with ``<think>``, ends with
    ``</answer>``, each of the four tags occurs exactly once, only whitespace separates ``</think>``
    from ``<answer>``, and (``nonempty``) the answer is not blank.
    """
    text = response.strip()
    t_open, t_close, a_open, a_close = f"<{think_tag}>", f"</{think_tag}>", f"<{answer_tag}>", f"</{answer_tag}>"
    if not (text.startswith(t_open) and text.endswith(a_close)):
        return False
    if any(text.count(tag) != 1 for tag in (t_open, t_close, a_open, a_close)):
        return False
    i_close, i_answer = text.find(t_close), text.find(a_open)
    if not (len(t_open) <= i_close < i_answer):
        return False
    if text[i_close + len(t_close) : i_answer].strip():
        return False
    answer = text[i_answer + len(a_open) : len(text) - len(a_close)]
    return not (nonempty and not answer.strip())


def lenient_format(response: str, think_tag: str = "think", answer_tag: str = "answer") -> bool:
    """Lenient layout (a search): somewhere ``<think>...</think>``, whitespace, ``<answer>...</answer>``.

    Equivalent to ``re.search(r"<think>.*?</think>\\s*<answer>.*?</answer>", text, re.S)``, in linear time.
    """
    t_open, t_close, a_open, a_close = f"<{think_tag}>", f"</{think_tag}>", f"<{answer_tag}>", f"</{answer_tag}>"
    first_open = response.find(t_open)
    if first_open < 0:
        return False
    last_answer_close = response.rfind(a_close)
    pos = first_open + len(t_open)
    while True:
        close = response.find(t_close, pos)
        if close < 0:
            return False
        after = _SPACES.match(response, close + len(t_close)).end()
        if response.startswith(a_open, after):
            return last_answer_close >= after + len(a_open)
        pos = close + len(t_close)


def format_reward(
    response: str,
    label: object = None,  # noqa: ARG001 - every component takes (response, label)
    mode: str = "strict",
    think_tag: str = "think",
    answer_tag: str = "answer",
    nonempty: bool = True,
) -> float:
    """Format reward in {0, 1}.

    mode "strict": :func:`strict_format`; "lenient": :func:`lenient_format`; "rec": strict and the
    answer holds at least one box ``[x1, y1, x2, y2]`` (:func:`remote_rm.rewards.boxes.parse_boxes`).
    """
    if mode == "strict":
        return float(strict_format(response, think_tag, answer_tag, nonempty))
    if mode == "lenient":
        return float(lenient_format(response, think_tag, answer_tag))
    if mode == "rec":
        if not strict_format(response, think_tag, answer_tag, nonempty):
            return 0.0
        return float(bool(parse_boxes(tagged(response, answer_tag) or "", limit=1)))
    raise ValueError(f"format: unknown mode {mode!r} (strict, lenient, rec)")
