"""The reward components a recipe can name, and where each one runs.

Every component is a pure function ``fn(response: str, label: Label, **params) -> float`` with its
formula in its docstring, except four that need more than one sample's text:

- ``math_accuracy``: the answer is extracted here, math-verify runs in a math worker process;
- ``cosine_length``: needs the correctness another component of the same recipe computed;
- ``judge_consistency``: asks the LLM judge (async, in the server process);
- ``generative_rm``: asks a generative reward model to compare the answer with the reference (async, in the
  server process; :mod:`remote_rm.rewards.generative`, :mod:`remote_rm.generative_rm`).

``where`` says where the plain ones run: "inline" (cheap, microseconds: in the server process) or
"pool" (CPU-heavy text metrics and mAP, and ``code_tests``, which runs the response's code against the label's
tests in the sandbox of :mod:`remote_rm.sandbox`: in the scoring worker processes).

A custom component is named by import path, ``package.module:function`` or ``/path/file.py:function``,
and runs in the pool unless the recipe says ``where: inline``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from remote_rm.rewards import accuracy, boxes, code_tests, format, generative, length, ovd, similarity


@dataclass(frozen=True)
class Component:
    """A registered reward function: ``kind`` is "plain", "math", "derived", "judge" or "generative"; ``where`` for
    plain ones; ``check``: params -> [(param, problem)], run on the config at start-up."""

    name: str
    func: Callable[..., float]
    kind: str = "plain"
    where: str = "inline"
    check: Callable[[dict], list[tuple[str, str]]] | None = None


def _math_accuracy(
    response: str, label: object, answer_tag: str = "answer", boxed_fallback: bool = True, timeout_s: float = 5.0
) -> float:
    """Math accuracy (runs through the math worker pool; see :mod:`remote_rm.rewards.math_accuracy`).

    1 if math-verify finds the answer (last ``<answer>`` content, else last \\boxed{}) equal to the
    solution, else 0; no answer, a parse failure, a verifier crash or a timeout: 0.
    """
    raise RuntimeError("math_accuracy runs through the math worker pool, not directly")  # pragma: no cover


def _cosine_length(
    response: str,
    label: object,
    correct_from: str = "accuracy",
    threshold: float = 0.5,
    max_len: int = 1000,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
) -> float:
    """Cosine length reward (:func:`remote_rm.rewards.length.cosine_length`) with correct = component
    ``correct_from`` >= ``threshold``; computed after the recipe's other components."""
    raise RuntimeError("cosine_length is computed by the scorer after the other components")  # pragma: no cover


def _judge_consistency(response: str, label: object, reasoning_lines: int = 3) -> float:
    """R1-Reward's consistency: the LLM judge says whether the reasoning's last ``reasoning_lines`` lines
    agree with the final answer: +1 (agree), -1 (disagree), or the configured fallback when it fails."""
    raise RuntimeError("judge_consistency is asked of the LLM judge by the scorer")  # pragma: no cover


def _generative_rm(
    response: str,
    label: object,
    orders: str = "both",
    ties_win: bool = False,
    answer_only: bool = True,
    max_chars: int = 4000,
) -> float:
    """R1-Reward's generative reward model compares the policy's answer p with the reference a, in both orders:
    score = (1/|O|) * sum_o w_o, w_o = 1[the verdict prefers p] (the fallback when a call fails); ties_win scores
    a split 1. Formula and details: :mod:`remote_rm.rewards.generative`."""
    raise RuntimeError("generative_rm is asked of the generative reward model by the scorer")  # pragma: no cover


BUILTIN: dict[str, Component] = {
    c.name: c
    for c in (
        Component("format", format.format_reward),
        Component("rec_iou", boxes.rec_iou),
        Component("choice_accuracy", accuracy.choice_accuracy),
        Component("yes_no_accuracy", accuracy.yes_no_accuracy),
        Component("exact_match", accuracy.exact_match),
        Component("numeric_accuracy", accuracy.numeric_accuracy),
        Component("preference_accuracy", accuracy.preference_accuracy),
        Component("omnirl_length", length.omnirl_length),
        Component("repetition_penalty", length.repetition_penalty),
        Component("bleu", similarity.bleu, where="pool"),
        Component("rouge", similarity.rouge, where="pool"),
        Component("meteor", similarity.meteor, where="pool"),
        Component("similarity", similarity.similarity, where="pool"),
        Component("ovd_map", ovd.ovd_map, where="pool"),
        Component("code_tests", code_tests.code_tests, where="pool", check=code_tests.check_params),
        Component("math_accuracy", _math_accuracy, kind="math"),
        Component("cosine_length", _cosine_length, kind="derived"),
        Component("judge_consistency", _judge_consistency, kind="judge"),
        Component("generative_rm", _generative_rm, kind="generative", check=generative.check_params),
    )
}


@functools.lru_cache(maxsize=256)
def _import_function(path: str) -> Callable[..., float]:
    module_part, _, func_name = path.rpartition(":")
    if not module_part or not func_name:
        raise ValueError(f"{path!r} is not a built-in reward nor 'module:function' / 'file.py:function'")
    if module_part.endswith(".py"):
        file = Path(module_part).expanduser().resolve()
        if not file.is_file():
            raise ValueError(f"{path!r}: file not found: {file}")
        mod_name = f"remote_rm_custom_{abs(hash(str(file)))}"
        spec = importlib.util.spec_from_file_location(mod_name, file)
        if spec is None or spec.loader is None:
            raise ValueError(f"{path!r}: cannot import {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_part)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ValueError(f"{path!r}: {module_part} has no function {func_name!r}")
    return func


def resolve(fn: str, where: str | None = None) -> Component:
    """The component called ``fn``: a built-in name or an import path (raises ValueError, naming it)."""
    if fn in BUILTIN:
        comp = BUILTIN[fn]
        if where is not None and comp.kind == "plain" and where != comp.where:
            comp = Component(comp.name, comp.func, comp.kind, where, comp.check)
        return comp
    try:
        func = _import_function(fn)
    except ImportError as exc:
        raise ValueError(f"{fn!r}: import failed: {exc}") from exc
    return Component(fn, func, "plain", where or "pool")


def check_params(comp: Component, params: dict) -> list[str]:
    """Names in ``params`` that ``comp``'s function does not accept (empty when it takes ``**kwargs``)."""
    sig = inspect.signature(comp.func)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return []
    accepted = set(list(sig.parameters)[2:])
    return sorted(k for k in params if k not in accepted)


def names() -> list[str]:
    """The built-in component names."""
    return sorted(BUILTIN)
