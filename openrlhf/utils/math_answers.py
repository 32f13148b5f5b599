r"""Boxed-answer extraction and math grading with OpenRLHF's names and signatures.

OpenRLHF's example ``math_reward_func.py`` does ``from openrlhf.utils import extract_boxed_answer,
grade_answer``; these are the same two calls, written for this project:

- :func:`extract_boxed_answer` returns the content of the last ``\boxed{...}`` (or ``\fbox{...}``),
  nested braces included, or None when there is none or its braces never close.
- :func:`grade_answer` is True when the extracted answer equals the reference after normalisation
  (spaces, ``\left``/``\right``, ``\dfrac``, units of degrees and percent, ``x = 5``, ``1,000``), when
  both are the same number (``0.5`` and ``\frac{1}{2}``), or when math-verify finds them equal
  (symbolic, sets, intervals).

math-verify bounds its work with ``signal.alarm``, which only works in a process's main thread: in
another thread math-verify 0.9 raises and 0.5 silently answers False. So the timeout is used in the
main thread only; in other threads (OpenRLHF calls reward functions through ``asyncio.to_thread``)
math-verify runs without it, on answers of at most ``_MAX_THREAD_CHARS`` characters. Without
math-verify installed (it comes with the ``reward`` extra) the normalised and numeric comparisons
remain.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from fractions import Fraction

__all__ = ["extract_boxed_answer", "grade_answer"]

_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*")
_MAX_THREAD_CHARS = 400  # math-verify without a timeout: short answers only


def extract_boxed_answer(solution: str) -> str | None:
    r"""The content of the last ``\boxed{...}`` or ``\fbox{...}`` in ``solution``, or None.

    Braces nest (``\boxed{\frac{1}{2}}`` gives ``\frac{1}{2}``); when the last opening's braces never
    close (a cut-off response) the answer is None, as in OpenRLHF. ``\boxed 5`` (no braces) gives the
    text up to the next space or ``$``. Runs in linear time.
    """
    if not isinstance(solution, str):
        return None
    openings = [m.end() for m in _BOX_OPEN.finditer(solution)]
    if not openings:
        return None
    start = openings[-1]
    if start < len(solution) and solution[start] == "{":
        depth = 0
        for i in range(start, len(solution)):
            ch = solution[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return solution[start + 1 : i]
        return None
    bare = re.match(r"[^\s$]+", solution[start:])
    return bare.group(0) if bare else None


# --------------------------------------------------------------------------- normalisation

_REMOVE = (
    "\\left",
    "\\right",
    "\\!",
    "\\,",
    "\\;",
    "\\:",
    "\\ ",
    "\\displaystyle",
    "^{\\circ}",
    "^\\circ",
    "\\circ",
    "\\%",
    "%",
    "\\$",
    "$",
)
_TEXT_WRAPPER = re.compile(r"^\\(?:text|textbf|mathrm|mbox)\{(.*)\}$", re.S)
_UNIT_TEXT = re.compile(r"\\(?:text|mbox)\{\s*[A-Za-z ]*\}$")
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")
_LHS = re.compile(r"^[A-Za-z]\w?=")


def _normalize(text: str) -> str:
    """A canonical string for comparing two short math answers."""
    text = text.strip()
    for _ in range(2):  # "\text{\textbf{5}}"
        inner = _TEXT_WRAPPER.match(text)
        if inner:
            text = inner.group(1).strip()
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    for token in _REMOVE:
        text = text.replace(token, "")
    text = _UNIT_TEXT.sub("", text.strip())  # "5\text{ cm}"
    text = re.sub(r"\s+", "", text)
    text = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _LHS.sub("", text)  # "x=5" -> "5"
    text = text.rstrip(".")
    if text.startswith("."):
        text = "0" + text
    if text.startswith("{") and text.endswith("}") and text.count("{") == 1:
        text = text[1:-1]
    number = _as_number(text)
    if number is not None and number.denominator == 1:
        text = str(number.numerator)
    return text


_FRAC = re.compile(r"^(-?)\\frac\{?(-?[\d.]+)\}?\{?(-?[\d.]+)\}?$")
_SLASH = re.compile(r"^(-?[\d.]+)/(-?[\d.]+)$")


def _as_number(text: str) -> Fraction | None:
    """``text`` as an exact number (integers, decimals, ``a/b``, ``\\frac{a}{b}``), else None."""
    try:
        if _SLASH.match(text) or re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?", text, re.I):
            if len(text) > 40:
                return None
            return Fraction(text)
        frac = _FRAC.match(text)
        if frac:
            sign, num, den = frac.groups()
            value = Fraction(num) / Fraction(den)
            return -value if sign else value
    except (ValueError, ZeroDivisionError):
        return None
    return None


# --------------------------------------------------------------------------- math-verify


def _latex_wrapped(text: str) -> str:
    """math-verify reads LaTeX inside ``$...$`` (or ``\\(...\\)``, ``\\boxed{}``): wrap bare text once."""
    return text if re.search(r"\$|\\\(|\\\[|\\boxed", text) else f"${text}$"


class _NoTimeoutWarning(logging.Filter):
    """Drops math-verify's "Timeout is disabled" warning: off the main thread that is deliberate."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


_QUIET = _NoTimeoutWarning()


def _math_verify_equal(given: str, gold: str, timeout_s: int | None) -> bool | None:
    """math-verify's verdict, or None when math-verify is not installed."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return None
    for name in ("math_verify.parser", "math_verify.grader"):
        log = logging.getLogger(name)
        if _QUIET not in log.filters:
            log.addFilter(_QUIET)
    try:
        gold_parsed = parse(_latex_wrapped(gold), parsing_timeout=timeout_s) or parse(gold, parsing_timeout=timeout_s)
        given_parsed = parse(_latex_wrapped(given), parsing_timeout=timeout_s) or parse(
            given, parsing_timeout=timeout_s
        )
        if not gold_parsed or not given_parsed:
            return False
        return bool(verify(gold_parsed, given_parsed, timeout_seconds=timeout_s))
    except Exception:  # noqa: BLE001 - a verifier failure is "not shown equal", never credit
        return False


def grade_answer(given_answer: str, ground_truth: str, *, timeout_s: int = 5) -> bool:
    """True if ``given_answer`` (already taken out of ``\\boxed{}``) matches ``ground_truth``.

    Same call as OpenRLHF's ``openrlhf.utils.grade_answer``: None on either side is False, other
    values are compared as ``str``. Tried in order: equal after :func:`_normalize`; equal as exact
    numbers; math-verify's ``verify(gold, answer)`` (with ``timeout_s`` per parse and comparison in
    the main thread, without a timeout on answers of at most 400 characters in other threads, where
    math-verify's signal-based timeout cannot work).
    """
    if given_answer is None or ground_truth is None:
        return False
    given, gold = str(given_answer).strip(), str(ground_truth).strip()
    if not given or not gold:
        return False
    given_norm, gold_norm = _normalize(given), _normalize(gold)
    if given_norm and given_norm == gold_norm:
        return True
    given_num, gold_num = _as_number(given_norm), _as_number(gold_norm)
    if given_num is not None and gold_num is not None:
        if given_num == gold_num:
            return True
        return math.isclose(float(given_num), float(gold_num), rel_tol=1e-9, abs_tol=1e-12)
    if threading.current_thread() is threading.main_thread():
        verdict = _math_verify_equal(given, gold, max(1, int(math.ceil(timeout_s))))
    elif len(given) <= _MAX_THREAD_CHARS and len(gold) <= _MAX_THREAD_CHARS:
        verdict = _math_verify_equal(given, gold, None)
    else:
        verdict = None
    return bool(verdict)
