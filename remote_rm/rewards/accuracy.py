"""Rule-based accuracy rewards on the extracted answer: choice letter, yes/no, exact match, numbers,
and the preference answer (which of two responses is better, R1-Reward).

Each reads the answer with :func:`remote_rm.rewards.extract.final_answer` (last ``<answer>`` content,
else last ``\\boxed{}``; with ``fallback_to_response`` the whole response when neither exists) and
returns 1.0 or 0.0. An answer that names several candidates (both "yes" and "no", two letters)
scores 0: hedging is not paid.
"""

from __future__ import annotations

import re

from remote_rm.rewards.extract import final_answer, numbers
from remote_rm.text import normalize_answer


def _solution(label: object) -> object:
    return getattr(label, "solution", label)


def _answer(response: str, answer_tag: str, fallback_to_response: bool) -> str | None:
    answer = final_answer(response, answer_tag)
    if answer is None and fallback_to_response:
        return response
    return answer


# "B", "(B)", "B.", "B) text", "[B]" at the start of the answer (not "I think", not "A cat").
_LEADING_LETTER = re.compile(r"\s*[\(\[]?([A-Za-z])(?:[\)\]\.:]|\s*$)")
# "answer is B", "option (B)", "choice: B". Possessive whitespace: linear in a long whitespace run (two plain
# \s* around an optional word let the engine try every split of the run: quadratic).
_NAMED_LETTER = re.compile(r"(?i:answer|option|choice)\s*+(?:(?:is|:)\s*+)?[\(\[]?([A-Z])\b")
_LONE_LETTER = re.compile(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])")
_WORD_AFTER = re.compile(r" [a-z]")  # "I think", "A cat": the pronoun/article, not an option


def choice_letter(text: str, letters: str = "ABCDEFGHIJ") -> str | None:
    """The option letter an answer names, or None when there is none or it is ambiguous.

    Tried in order: a letter opening the answer ("B", "(B)", "B. Paris"); a letter after
    "answer/option/choice (is)"; the single distinct stand-alone capital letter among ``letters``
    (not counting "I"/"A" followed by a lower-case word).
    """
    match = _LEADING_LETTER.match(text)
    if match and match.group(1).upper() in letters:
        return match.group(1).upper()
    named = {m.group(1) for m in _NAMED_LETTER.finditer(text[:10_000]) if m.group(1) in letters}
    if len(named) == 1:
        return named.pop()
    head = text[:10_000]
    lone = {
        m.group(1)
        for m in _LONE_LETTER.finditer(head)
        if m.group(1) in letters and not (m.group(1) in "AI" and _WORD_AFTER.match(head, m.end()))
    }
    return lone.pop() if len(lone) == 1 else None


def choice_accuracy(
    response: str,
    label: object,
    letters: str = "ABCDEFGHIJ",
    answer_tag: str = "answer",
    fallback_to_response: bool = False,
) -> float:
    """1 if the answer's option letter (:func:`choice_letter`) equals the solution's letter, else 0."""
    gold = choice_letter(str(_solution(label)), letters)
    answer = _answer(response, answer_tag, fallback_to_response)
    if gold is None or answer is None:
        return 0.0
    return float(choice_letter(answer, letters) == gold)


_YES_NO = re.compile(r"\b(yes|no)\b", re.I)


def yes_no(text: str) -> str | None:
    """ "yes" or "no" when exactly one of the two words occurs (on word boundaries, any case), else None."""
    found = {m.group(1).lower() for m in _YES_NO.finditer(text[:10_000])}
    return found.pop() if len(found) == 1 else None


def yes_no_accuracy(
    response: str, label: object, answer_tag: str = "answer", fallback_to_response: bool = False
) -> float:
    """1 if the answer says the solution's yes/no (:func:`yes_no`) and not the other, else 0."""
    gold = yes_no(str(_solution(label)))
    answer = _answer(response, answer_tag, fallback_to_response)
    if gold is None or answer is None:
        return 0.0
    return float(yes_no(answer) == gold)


def exact_match(response: str, label: object, answer_tag: str = "answer", fallback_to_response: bool = False) -> float:
    """1 if normalize_answer(answer) == normalize_answer(solution) (:func:`remote_rm.text.normalize_answer`).

    A list solution accepts any of its items.
    """
    answer = _answer(response, answer_tag, fallback_to_response)
    if answer is None:
        return 0.0
    solution = _solution(label)
    golds = solution if isinstance(solution, list) else [solution]
    normalized = normalize_answer(answer)
    return float(any(normalized == normalize_answer(str(g)) for g in golds))


def numeric_accuracy(
    response: str,
    label: object,
    rel_tol: float = 0.0,
    abs_tol: float = 1e-9,
    answer_tag: str = "answer",
    fallback_to_response: bool = False,
) -> float:
    """1 if the answer's last number x and the solution's number y satisfy |x - y| <= max(abs_tol, rel_tol*|y|).

    For counting ("how many ...") and plain numeric answers; math expressions go to math-verify.
    """
    answer = _answer(response, answer_tag, fallback_to_response)
    solution = _solution(label)
    gold = [float(solution)] if isinstance(solution, (int, float)) and not isinstance(solution, bool) else None
    if gold is None:
        gold = numbers(str(solution), limit=1)
    if answer is None or not gold:
        return 0.0
    found = numbers(answer[-10_000:])
    if not found:
        return 0.0
    x, y = found[-1], gold[0]
    return float(abs(x - y) <= max(abs_tol, rel_tol * abs(y)))


_ONE_OR_TWO = re.compile(r"(?<![\d.])([12])(?![\d.])")


def preferred_response(text: str) -> int | None:
    """1 or 2 when the text names exactly one of them as a stand-alone digit ("2", "Response 2"), else None."""
    found = {int(m.group(1)) for m in _ONE_OR_TWO.finditer(text[:10_000])}
    return found.pop() if len(found) == 1 else None


def preference_accuracy(response: str, label: object, answer_tag: str = "answer") -> float:
    """R1-Reward's accuracy: 1 if the answer picks the same response (1 or 2) as the label, else 0.

    Only the ``<answer>`` content counts (no fallback to the reasoning).
    """
    answer = final_answer(response, answer_tag, boxed_fallback=True)
    gold = preferred_response(str(_solution(label)))
    if answer is None or gold is None:
        return 0.0
    return float(preferred_response(answer) == gold)
