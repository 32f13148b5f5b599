"""Math accuracy through math-verify, on the extracted answer only.

math-verify's timeouts use signals, which work only in a process's main thread (in threads 0.5.x
silently returns False and 0.9 raises), so :func:`verify_answer` runs in the server's math worker
processes (:mod:`remote_rm.pool`), each task in the worker's main thread. The server adds an outer
per-call timeout and scores a crash or a timeout 0: a verifier failure never gives free credit.
"""

from __future__ import annotations

import re

from remote_rm.rewards.extract import final_answer, tagged

_DELIMITED = re.compile(r"\$|\\\(|\\\[|\\boxed")


def _latex_wrapped(text: str) -> str:
    """math-verify reads LaTeX inside $...$, \\(...\\), \\[...\\] or \\boxed{}; wrap bare LaTeX once."""
    return text if _DELIMITED.search(text) else f"${text}$"


def math_answer(response: str, answer_tag: str = "answer", boxed_fallback: bool = True) -> str | None:
    r"""What math accuracy verifies: the last ``<answer>`` content, else the last \boxed{} (or None)."""
    return final_answer(response, answer_tag, boxed_fallback)


def gold_answer(solution: object) -> str:
    """The reference answer text: a ``<answer>`` inside the solution if there is one, else the solution."""
    text = str(solution)
    inner = tagged(text, "answer")
    return (inner if inner is not None else text).strip()


def verify_answer(answer: str, gold: str, timeout_s: int = 5) -> float:
    """1.0 if math-verify finds ``answer`` equal to ``gold``, else 0.0 (also when either fails to parse).

    Both sides are parsed with math-verify's LaTeX and plain-expression extraction (bare LaTeX gets
    ``$...$`` around it); equality is math-verify's ``verify(gold, answer)`` (symbolic, numeric to 6
    decimals, sets and intervals). Must run in a process's main thread.
    """
    from math_verify import parse, verify

    timeout_s = max(1, int(round(timeout_s)))
    gold_parsed = parse(_latex_wrapped(gold), parsing_timeout=timeout_s)
    if not gold_parsed:
        gold_parsed = parse(gold, parsing_timeout=timeout_s)
    answer_parsed = parse(_latex_wrapped(answer), parsing_timeout=timeout_s)
    if not answer_parsed:
        answer_parsed = parse(answer, parsing_timeout=timeout_s)
    if not gold_parsed or not answer_parsed:
        return 0.0
    return float(bool(verify(gold_parsed, answer_parsed, timeout_seconds=timeout_s)))
