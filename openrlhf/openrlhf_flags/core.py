"""The vocabulary of OpenRLHF's flags here and the logic that translates or refuses their values.

:class:`Alias` (an OpenRLHF name -> this project's dotted keys, through a converter), :class:`Refusal` (a
setting this project does not have) and :class:`Lookup` (other keys' values, for converters that depend on
them), with the converter builders and converters the tables (openrlhf/openrlhf_flags/tables.py) are made of.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MISSING: Any = object()
"""What :class:`Lookup.get` returns for a key that no source set."""

OPENRLHF_VERSION = "0.11.2"
ISSUE_SPEED = 12  # packing, dynamic (token-budget) batches


class AliasRefused(ValueError):
    """A converter met a value whose meaning this project does not have."""

    def __init__(self, reason: str, instead: str, issue: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.instead = instead
        self.issue = issue


class AliasValueError(ValueError):
    """A converter met a value that is wrong in OpenRLHF too (a budget too small for its parts)."""


class Lookup:
    """Values of other keys, for converters that depend on them: ``get`` (set by a source, else MISSING)
    and ``value`` (set, else this project's default)."""

    def __init__(self, get: Callable[[str], Any], default: Callable[[str], Any]) -> None:
        self._get = get
        self._default = default

    def get(self, path: str) -> Any:
        return self._get(path)

    def value(self, path: str) -> Any:
        found = self._get(path)
        return self._default(path) if found is MISSING else found


Converter = Callable[[Any, Lookup], dict[str, Any]]


@dataclass(frozen=True)
class Alias:
    """``--name VALUE`` sets ``convert(VALUE)`` (dotted path -> value) here.

    ``kind``: the type a command-line value is parsed to (an annotation); None: the type of ``targets[0]``.
    ``deferred``: converted after every other key of the source, for converters that look at other keys.
    An alias whose ``targets`` hold its own name is a key of this project that OpenRLHF gives a wider
    meaning (``algo.kl.target``); every other alias is a name this project does not have.
    """

    name: str
    targets: tuple[str, ...]
    convert: Converter
    note: str = ""
    kind: Any = None
    deferred: bool = False
    rename: bool = False

    def apply(self, value: Any, lookup: Lookup) -> dict[str, Any]:
        return self.convert(value, lookup)


@dataclass(frozen=True)
class Refusal:
    """An OpenRLHF flag whose setting this project does not have (``issue``: not yet, that issue adds it)."""

    name: str
    reason: str
    instead: str
    issue: int | None = None

    def message(self) -> str:
        return refusal_message(self.name, self.reason, self.instead, self.issue)


def refusal_message(name: str, reason: str, instead: str, issue: int | None = None) -> str:
    status = f"not supported yet (issue #{issue})" if issue else "not supported here"
    return f"--{name} (OpenRLHF's flag): {status}: {reason}; {instead}"


# --------------------------------------------------------------------------- converter builders


def _rename(name: str, target: str, note: str = "") -> Alias:
    return Alias(name, (target,), lambda value, _lookup: {target: value}, note, rename=True)


def _mapped(name: str, targets: tuple[str, ...], convert: Converter, note: str, kind: Any = None, **kw) -> Alias:
    return Alias(name, targets, convert, note, kind=kind, **kw)


def _only(name: str, kind: Any, allowed: tuple[Any, ...], reason: str, instead: str, note: str, issue=None) -> Alias:
    """A setting this project has in one form only: ``allowed`` values are accepted (nothing to set), any
    other value is refused with ``reason``."""

    def convert(value: Any, _lookup: Lookup) -> dict[str, Any]:
        if any(_same(value, ok) for ok in allowed):
            return {}
        raise AliasRefused(f"{reason} (got {value!r})", instead, issue)

    return Alias(name, (), convert, note, kind=kind)


def _no_effect(name: str, kind: Any, note: str) -> Alias:
    """A setting that changes nothing with what this project runs (as in OpenRLHF in the same situation)."""
    return Alias(name, (), lambda _value, _lookup: {}, note, kind=kind)


def _same(value: Any, allowed: Any) -> bool:
    if isinstance(allowed, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return math.isclose(float(value), allowed) or (math.isinf(allowed) and math.isinf(float(value)))
    return value == allowed


def _steps(target: str) -> Converter:
    """OpenRLHF's ``-1``: never (here 0, which still runs at the end); k > 0: every k steps."""

    def convert(value: Any, _lookup: Lookup) -> dict[str, Any]:
        if isinstance(value, int) and not isinstance(value, bool) and value == -1:
            return {target: 0}
        return {target: value}

    return convert


def _param_dtype(value: Any, _lookup: Lookup) -> dict[str, Any]:
    if value == "bf16":
        return {"ds.bf16": True}
    raise AliasRefused(
        f"fp16 mixed precision (loss scaling) is not implemented, only bf16 (got {value!r})",
        "use --ds.param_dtype bf16 (ds.bf16 true); CPU runs use fp32",
    )


def _eps_clip(value: Any, _lookup: Lookup) -> dict[str, Any]:
    return {"algo.clip.eps_low": value, "algo.clip.eps_high": value}


def _eps_clip_low_high(value: Any, _lookup: Lookup) -> dict[str, Any]:
    low, high = _pair(value)
    return {"algo.clip.eps_low": low, "algo.clip.eps_high": high}


def _pair(value: Any) -> tuple[Any, Any]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return value[0], value[1]
    raise AliasValueError(f"takes two values, LOW HIGH (got {value!r})")


IS_CORRECTION_BAND = (0.5, 5.0)  # OpenRLHF's default --algo.advantage.is_correction_threshold


def _is_correction_enable(value: Any, lookup: Lookup) -> dict[str, Any]:
    """On: the sampler importance correction with OpenRLHF's band, unless algo.clip.tis_cap / tis_floor are set."""
    if not value:
        return {}
    out: dict[str, Any] = {}
    if lookup.get("algo.clip.tis_cap") in (MISSING, 0, 0.0):
        out["algo.clip.tis_cap"] = IS_CORRECTION_BAND[1]
        if lookup.get("algo.clip.tis_floor") is MISSING:
            out["algo.clip.tis_floor"] = IS_CORRECTION_BAND[0]
    return out


def _is_correction_threshold(value: Any, lookup: Lookup) -> dict[str, Any]:
    """LOW HIGH: the band of an importance correction that is on (is_correction_enable or tis_cap); else nothing,
    as in OpenRLHF where the thresholds alone change nothing."""
    low, high = _pair(value)
    if lookup.get("algo.clip.tis_cap") in (MISSING, 0, 0.0):
        return {}
    if not 0 <= low < high:
        raise AliasValueError(f"takes LOW HIGH with 0 <= LOW < HIGH (got {value!r})")
    return {"algo.clip.tis_floor": low, "algo.clip.tis_cap": high}


def _dual_clip(value: Any, _lookup: Lookup) -> dict[str, Any]:
    return {"algo.clip.dual_clip": 0.0 if value is None else value}


def _kl_target(value: Any, lookup: Lookup) -> dict[str, Any]:
    """OpenRLHF: a KL target means the adaptive controller; here too, unless algo.kl.adaptive is set."""
    if lookup.get("algo.kl.adaptive") is not MISSING:
        return {"algo.kl.target": value}
    return {"algo.kl.adaptive": True, "algo.kl.target": value}


def _lora_targets(value: Any, _lookup: Lookup) -> dict[str, Any]:
    modules = [value] if isinstance(value, str) else list(value)
    if modules == ["all-linear"]:
        raise AliasRefused(
            "'all-linear' (PEFT's every-Linear shorthand) is not implemented: LoRA wraps the named modules",
            "name them: --ds.lora.target_modules q_proj k_proj v_proj o_proj gate_proj up_proj down_proj",
        )
    return {"actor.lora.target_modules": modules}


def _max_len(value: Any, lookup: Lookup) -> dict[str, Any]:
    """OpenRLHF's total budget (prompt + response): vLLM's max_model_len; prompts are cut to
    max_len - max_new_tokens; without max_new_tokens a response may use what its prompt leaves."""
    total = value
    out: dict[str, Any] = {"vllm.max_model_len": total}
    new_tokens = lookup.get("rollout.max_new_tokens")
    prompt_len = lookup.get("data.prompt_max_len")
    if new_tokens is not MISSING and prompt_len is MISSING:
        prompt_len = total - new_tokens
        out["data.prompt_max_len"] = prompt_len
    elif new_tokens is MISSING:
        prompt_len = lookup.value("data.prompt_max_len")
        new_tokens = total - prompt_len
        out["rollout.max_new_tokens"] = new_tokens
    if isinstance(new_tokens, int) and isinstance(prompt_len, int) and min(new_tokens, prompt_len) < 1:
        raise AliasValueError(
            f"{total} leaves no room for both the prompt ({prompt_len} tokens, data.prompt_max_len) and the "
            f"response ({new_tokens} tokens, rollout.max_new_tokens): raise it, or set --data.prompt_max_len and "
            "--rollout.max_new_tokens"
        )
    return out


def _vllm_generate_batch_size(value: Any, lookup: Lookup) -> dict[str, Any]:
    prompts = lookup.value("train.rollout_batch_size")
    if value is None or value == prompts:
        return {}
    raise AliasRefused(
        f"generating {value} prompts per step while training on {prompts} (over-sampling: one generation buffered "
        "for later steps) is not implemented; the async pipeline overlaps generation with training instead",
        "leave it out (each step generates --rollout.batch_size prompts; --train.async_enable "
        "--train.max_staleness K generates K steps ahead)",
    )


def _prompt_dataset_probs(value: Any, _lookup: Lookup) -> dict[str, Any]:
    probs = [float(p) for p in str(value).split(",")] if isinstance(value, str) else value
    if probs is None or len(probs) <= 1:
        return {}
    raise AliasRefused(
        f"weighted sampling across datasets ({value}) is not implemented: every listed dataset is read in full",
        "mix the files beforehand, or use --data.sampling_strategy per run",
    )
