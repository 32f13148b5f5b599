"""Find the parts of a model response that rewards look at: tagged answers, \\boxed{}, numbers.

Every function here runs in linear time in the length of the text (``str.find``/``rfind`` scans and
regular expressions without nested quantifiers), so tag floods and megabyte strings stay cheap.
"""

from __future__ import annotations

import re

_NUMBER_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d{1,4})?|[-+]?\.\d+")


def tagged(text: str, tag: str = "answer", which: str = "last") -> str | None:
    """The content of the ``which`` ("first" or "last") complete ``<tag>...</tag>`` pair, or None.

    last: the last ``</tag>`` and the last ``<tag>`` before it; first: the first ``<tag>`` and the first
    ``</tag>`` after it.
    """
    open_tag, close_tag = f"<{tag}>", f"</{tag}>"
    if which == "first":
        start = text.find(open_tag)
        if start < 0:
            return None
        end = text.find(close_tag, start + len(open_tag))
        return None if end < 0 else text[start + len(open_tag) : end]
    end = text.rfind(close_tag)
    if end < 0:
        return None
    start = text.rfind(open_tag, 0, end)
    return None if start < 0 else text[start + len(open_tag) : end]


_BOXED_RE = re.compile(r"\\(?:boxed|fbox) ?\{")


def last_boxed(text: str, max_scan: int = 20_000, max_candidates: int = 16) -> str | None:
    r"""The content of the last ``\boxed{...}`` (or ``\fbox{...}``) with balanced braces, or None.

    Tries the last ``max_candidates`` openings and scans at most ``max_scan`` characters after each,
    so a flood of unclosed ``\boxed{`` costs O(len(text)) plus a bounded amount.
    """
    openings = [m.end() for m in _BOXED_RE.finditer(text)][-max_candidates:]
    for body in reversed(openings):
        depth = 1
        for i in range(body, min(len(text), body + max_scan)):
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[body:i]
    return None


def final_answer(response: str, tag: str = "answer", boxed_fallback: bool = True) -> str | None:
    r"""The answer a response commits to: its last ``<tag>`` content, else its last \boxed{}, else None.

    Never the whole completion: scoring the whole text would pay a wrong answer whose reasoning
    happens to mention the right value.
    """
    answer = tagged(response, tag)
    if answer is not None:
        return answer.strip()
    if boxed_fallback:
        boxed = last_boxed(response)
        if boxed is not None:
            return boxed.strip()
    return None


def numbers(text: str, limit: int = 10_000) -> list[float]:
    """The numbers written in ``text`` (``1,234.5``, ``-3``, ``2e3``, ``.5``), at most ``limit`` of them."""
    out = []
    for match in _NUMBER_RE.finditer(text):
        try:
            out.append(float(match.group(0).replace(",", "")))
        except ValueError:  # pragma: no cover - the pattern only matches numbers
            continue
        if len(out) >= limit:
            break
    return out
