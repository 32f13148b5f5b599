"""The pure parts of the ``generative_rm`` reward: what the reward model is shown, and the score of its verdicts.

A generative reward model (R1-Reward) is asked whether the policy's answer p is better than the reference
answer a (the label's solution; of a list, the first item) for the question q, with R1-Reward's comparison
question (:mod:`remote_rm.pairwise`) in one or both orders:

- ``forward``: Response 1 = p, Response 2 = a;   ``swapped``: Response 1 = a, Response 2 = p.

Order o's verdict v_o (1 or 2, :func:`remote_rm.pairwise.preference_verdict`) gives w_o = 1 when it names p's
position and 0 when it names a's; an order whose call fails, times out, is skipped by the circuit breaker or
has no verdict gives w_o = f (``generative_rm.fallback``, default 0). Over the orders O asked
(``orders``: both (default), forward or swapped):

    score = (1 / |O|) * sum_{o in O} w_o

so with both orders and valid verdicts the score is 1 (p preferred both times), 0 (a both times) or 0.5 (a
split: the verdict followed the position, which is how both orders cancel a position bias). ``ties_win: true``
counts a split as the policy being as good as the reference: with every verdict valid, score = 1[mean >= 1/2].
Without asking: p equal to a after normalisation (:func:`remote_rm.text.normalize_answer`) is a tie, scored 1;
an empty p scores 0.

p is the response's final answer (last ``<answer>`` content, else last ``\\boxed{}``; with neither, the
response with its ``<think>`` block removed); ``answer_only: false`` shows the whole response without the think
block. q is the label's ``question`` field when it has one, else the last user turn of the sample's prompt
(ChatML, Llama 3 or DeepSeek markers; image placeholders removed), else the prompt. Each text is cut to
``max_chars``, and the comparison's own markers (``[Question]:``, ``[Response 1]:``, ``[Response 2]:``) are
neutralised inside the texts, so a policy cannot start a fake "Response 2" of its own.
"""

from __future__ import annotations

import re
from typing import Any

from remote_rm.pairwise import r1_reward_judge_prompt
from remote_rm.rewards.extract import final_answer
from remote_rm.text import normalize_answer

ORDER_SETS = {"both": ("forward", "swapped"), "forward": ("forward",), "swapped": ("swapped",)}
POLICY_POSITION = {"forward": 1, "swapped": 2}  # where the policy's answer stands in each order

_MARKERS = re.compile(r"\[\s*(Question|Response\s*[12])\s*\]\s*:", re.IGNORECASE)
_USER_TURNS = (
    ("<|im_start|>user\n", "<|im_end|>"),
    ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
    ("<｜User｜>", "<｜Assistant｜>"),
)
_VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")


def check_params(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(param, message) for each value ``generative_rm`` cannot take (names are checked elsewhere)."""
    problems = []
    orders = params.get("orders", "both")
    if orders not in ORDER_SETS:
        problems.append(("orders", f"orders {orders!r} is not one of: {', '.join(ORDER_SETS)}"))
    for key in ("ties_win", "answer_only"):
        if key in params and not isinstance(params[key], bool):
            problems.append((key, f"{key} must be true or false, got {params[key]!r}"))
    max_chars = params.get("max_chars", 4000)
    if not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 1:
        problems.append(("max_chars", f"max_chars must be a positive integer, got {max_chars!r}"))
    return problems


def _without_think(response: str) -> str:
    end = response.rfind("</think>")
    return (response[end + len("</think>") :] if end >= 0 else response).strip()


def policy_text(response: str, answer_only: bool = True) -> str:
    """What the reward model sees of the policy's response (see the module docstring)."""
    if answer_only:
        answer = final_answer(response, "answer", boxed_fallback=True)
        if answer is not None:
            return answer
    return _without_think(response)


def question_text(prompt: str, fields: dict[str, Any]) -> str:
    """The question: the label's ``question`` field, else the prompt's last user turn, else the prompt."""
    question = fields.get("question")
    if isinstance(question, str) and question.strip():
        return question.strip()
    text = prompt
    for head, end in _USER_TURNS:
        start = prompt.rfind(head)
        if start >= 0:
            body = prompt[start + len(head) :]
            stop = body.find(end)
            text = body[:stop] if stop >= 0 else body
            break
    for token in _VISION_TOKENS:
        text = text.replace(token, "")
    return text.strip()


def quoted(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` with the comparison's markers neutralised: ``[Response 2]:`` -> ``(Response 2)``."""
    return _MARKERS.sub(lambda m: f"({m.group(1)})", text[:max_chars]) or "(empty)"


def comparison_prompts(
    question: str, policy: str, reference: str, orders: str = "both", max_chars: int = 4000
) -> list[tuple[str, str]]:
    """(order, prompt) for each order asked; the policy is Response 1 forward and Response 2 swapped."""
    q, p, a = quoted(question, max_chars), quoted(policy, max_chars), quoted(reference, max_chars)
    shown = {"forward": (p, a), "swapped": (a, p)}
    return [(order, r1_reward_judge_prompt(q, *shown[order])) for order in ORDER_SETS[orders]]


def decided_without_asking(policy: str, reference: str) -> float | None:
    """1.0 when the policy's answer equals the reference (a tie), 0.0 when it is empty, else None (ask)."""
    if not policy.strip():
        return 0.0
    if normalize_answer(policy) == normalize_answer(reference):
        return 1.0
    return None


def policy_win(order: str, verdict: int | None) -> float | None:
    """w_o: 1.0 when the verdict names the policy's position in ``order``, 0.0 for the reference's, None for none."""
    return None if verdict is None else float(verdict == POLICY_POSITION[order])


def generative_score(wins: list[float | None], fallback: float = 0.0, ties_win: bool = False) -> float:
    """score = mean over the orders of w_o (``fallback`` for None); with ``ties_win`` and every w_o valid,
    1[mean >= 1/2]."""
    if not wins:
        return fallback
    mean = sum(fallback if w is None else w for w in wins) / len(wins)
    if ties_win and all(w is not None for w in wins):
        return float(mean >= 0.5)
    return mean


def reference_text(solution: Any) -> str:
    """The reference answer: the solution's text (of a list, the first item)."""
    if isinstance(solution, list):
        solution = solution[0] if solution else ""
    return "" if solution is None else str(solution).strip()
