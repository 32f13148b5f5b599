"""What runs inside the worker processes (started once, with ``spawn``, when the server starts).

Scoring workers compute the CPU-heavy components (BLEU/ROUGE/METEOR, OVD mAP, custom rewards) for a
chunk of samples; they load WordNet once and keep their token/stem/synonym caches for their life.
Math workers run math-verify, each call in the worker's main thread (math-verify's timeouts are
signals). Any exception becomes a 0 score with its message, so one bad sample never sinks a batch.
"""

from __future__ import annotations

import math
import os
import signal
from typing import Any

from remote_rm import rewards


def _ignore_sigint() -> None:
    # Ctrl-C goes to the whole process group: let the server shut the pool down instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def init_scoring_worker(
    wordnet_enabled: bool, preload_wordnet: bool, source_dirs: tuple[str, ...], cache_dir: str | None
) -> None:
    """Import the metric libraries; set where WordNet comes from (or that METEOR goes without it) and,
    when a recipe uses METEOR, load it now rather than on the first request."""
    _ignore_sigint()
    from remote_rm import wordnet
    from remote_rm.rewards import ovd, similarity  # noqa: F401 - warm the imports

    wordnet.configure(wordnet_enabled, tuple(source_dirs), cache_dir)
    if wordnet_enabled and preload_wordnet:
        wordnet.load_wordnet()
        similarity.synonym_source(True)


def init_math_worker() -> None:
    _ignore_sigint()
    import math_verify  # noqa: F401 - pay the import once, at start-up


def worker_status() -> dict[str, Any]:
    """The worker's pid and what its METEOR has (called once per worker at start-up)."""
    from remote_rm.wordnet import _LOADED

    status = _LOADED[1].as_dict() if _LOADED is not None else {"available": False, "reason": "not loaded"}
    return {"pid": os.getpid(), "wordnet": status}


Item = tuple[str, str | None, str, Any, dict]  # (fn, where, response, label, params)


def score_items(items: list[Item]) -> list[tuple[float, str | None]]:
    """Score each (fn, where, response, label, params): (value, None) or (0.0, error message)."""
    out: list[tuple[float, str | None]] = []
    for fn, where, response, label, params in items:
        try:
            value = float(rewards.resolve(fn, where).func(response, label, **params))
            if not math.isfinite(value):
                out.append((0.0, f"{fn} returned {value}"))
            else:
                out.append((value, None))
        except Exception as exc:  # noqa: BLE001 - a reward failure scores 0 and is reported
            out.append((0.0, f"{fn}: {type(exc).__name__}: {str(exc)[:200]}"))
    return out


def verify_math(answer: str, gold: str, timeout_s: float) -> tuple[float, str | None]:
    """math-verify of one answer: (1.0 or 0.0, None), or (0.0, error) when it raised."""
    from remote_rm.rewards.math_accuracy import verify_answer

    try:
        return verify_answer(answer, gold, int(math.ceil(timeout_s))), None
    except Exception as exc:  # noqa: BLE001 - a verifier crash scores 0, never free credit
        return 0.0, f"math_verify: {type(exc).__name__}: {str(exc)[:200]}"
