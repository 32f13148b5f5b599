"""Length rewards (OmniRL's, and a cosine length reward) and an n-gram repetition penalty.

Lengths are in characters of the response: the service has no tokenizer (it must run without
transformers), and OmniRL measures characters too.
"""

from __future__ import annotations

import math

from remote_rm.text import words


def omnirl_length(
    response: str,
    label: object = None,  # noqa: ARG001 - every component takes (response, label)
    target: int = 500,
    gamma: float = 0.9,
    scale: float = 500.0,
    length: int | None = None,
) -> float:
    """OmniRL's length reward (OmniRL ``len_reward``), for length L (characters), T = ``target``.

    base = L * (1 + sin(pi * L / (2T)))  if L <= T,  else 2T + ln(L - T + 1)
    reward = base * gamma ** (L // T) * (0.5 + 0.5 * density) / scale,
    density = (number of , . ; ! characters) / L.
    ``length`` overrides L (the server passes the untruncated length).
    """
    n = len(response) if length is None else int(length)
    if n <= 0:
        return 0.0
    punctuation = sum(response.count(ch) for ch in ",.;!")
    density = punctuation / (n + 1e-6)
    if n <= target:
        base = n * (1.0 + math.sin(math.pi * n / (2.0 * target)))
    else:
        base = 2.0 * target + math.log(n - target + 1.0)
    # gamma ** (n // target) underflows harmlessly to 0.0 for absurd lengths.
    return base * gamma ** (n // target) * (0.5 + 0.5 * density) / scale


def cosine_length(
    length: int,
    correct: bool,
    max_len: int = 1000,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
) -> float:
    """Cosine length reward (Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning").

    r = lo + (hi - lo) * (1 + cos(pi * min(L, L_max) / L_max)) / 2, where for a correct answer
    (lo, hi) = (min_value_correct, max_value_correct): shorter correct answers earn more; for a wrong
    one (lo, hi) = (max_value_wrong, min_value_wrong): longer wrong answers are penalised less.
    """
    progress = min(max(length, 0), max_len) / max_len
    cosine = math.cos(progress * math.pi)
    if correct:
        lo, hi = min_value_correct, max_value_correct
    else:
        lo, hi = max_value_wrong, min_value_wrong
    return lo + 0.5 * (hi - lo) * (1.0 + cosine)


def repetition_penalty(
    response: str,
    label: object = None,  # noqa: ARG001 - every component takes (response, label)
    ngram: int = 3,
    max_penalty: float = -1.0,
) -> float:
    """n-gram repetition penalty: (1 - distinct n-grams / n-grams) * max_penalty (so in [max_penalty, 0]).

    n-grams are over :func:`remote_rm.text.words`; a response shorter than ``ngram`` words gets 0.
    """
    toks = words(response)
    total = len(toks) - ngram + 1
    if total <= 0:
        return 0.0
    distinct = len({tuple(toks[i : i + ngram]) for i in range(total)})
    return (1.0 - distinct / total) * max_penalty
