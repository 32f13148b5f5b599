"""The HTTP protocol: validating a /get_reward body into samples, with errors that name the field.

Request: ``{"query": [str], "prompts": [str], "labels": [label]}`` (OpenRLHF's remote RM). Only
``query`` is required: OpenRLHF before 0.6 sends ``{"query": [...]}`` alone; a missing (or null)
``prompts`` means empty prompts, a missing (or null) ``labels`` means no labels.

A label is any JSON value, as OpenRLHF passes whatever the dataset column holds:

- a string: the solution (the default recipe applies); ``""`` or only whitespace is no label
  (OpenRLHF sends ``""`` when ``--label_key`` is not set);
- a number: its text, the solution: an integer as written (``42`` -> ``"42"``), a float as Python's
  ``repr`` (``0.5`` -> ``"0.5"``, ``2.0`` -> ``"2.0"``, ``1e-07``); ``true``/``false`` -> ``"true"``/``"false"``;
- ``null``: no label;
- a list: the solution itself (several references, a box);
- an object ``{"solution": ..., "task": "rec" | ..., "image_size": [w, h], "input_size": [w, h], ...}``
  (``"solution": null`` is no label, with the task still routing the sample).

Whether a sample may go without a label depends on its recipe; :meth:`remote_rm.scoring.Scorer.check_labels`
answers 422 where a recipe's component needs one.

Response: ``{"rewards": [float], "scores": [float], "extra_logs": {name: float},
"components": {name: [float | null]}}`` (null where that sample's recipe has no such component).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

TASKS = ("rec", "ovd", "math", "counting", "choice", "yes_no", "exact", "generative", "preference")
_SIZE_FIELDS = ("image_size", "input_size")


class ProtocolError(ValueError):
    """A bad request: ``status`` (400, 413, 422), ``field`` (e.g. "labels[3].task") and a message."""

    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message

    def as_dict(self) -> dict[str, Any]:
        return {"detail": self.message, "field": self.field}


@dataclass(frozen=True)
class Label:
    """One sample's label: the ``solution``, an optional ``task``, and the other task fields."""

    solution: Any
    task: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def missing(self) -> bool:
        """No label: the solution is None, or a string that is empty or only whitespace."""
        return self.solution is None or (isinstance(self.solution, str) and not self.solution.strip())


NO_LABEL = Label(None)


def _type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def describe_label(label: Label) -> str:
    """How a missing label looked in the request, for error messages."""
    if label.solution is None:
        return "null" if not label.task else f"an object with solution null (task {label.task!r:.60})"
    return "an empty string" if label.solution == "" else "only whitespace"


def parse_json(body: bytes) -> Any:
    """Decode a JSON body; malformed JSON or UTF-8 raises a 400 naming the line and column."""
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise ProtocolError(400, None, f"body is not valid UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(400, None, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ProtocolError(400, None, "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ProtocolError(400, None, f"malformed JSON: {str(exc)[:200]}") from None


def _size(value: Any, where: str) -> tuple[float, float]:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in value)
    )
    if not ok:
        raise ProtocolError(422, where, f"{where} must be [width, height] with two positive numbers, got {value!r:.80}")
    return float(value[0]), float(value[1])


def scalar_text(value: bool | int | float) -> str:
    """A JSON number or boolean as label text: ``true``/``false``, an int as written, a float's ``repr``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def parse_label(raw: Any, where: str, known_tasks: set[str]) -> Label:
    """A label from its JSON value (see the module docstring for every type)."""
    if isinstance(raw, str):
        return Label(solution=raw)
    if raw is None:
        return NO_LABEL
    if isinstance(raw, (bool, int, float)):
        return Label(solution=scalar_text(raw))
    if isinstance(raw, list):
        return Label(solution=raw)
    if not isinstance(raw, dict):  # cannot happen for decoded JSON; kept for callers passing Python objects
        raise ProtocolError(
            422, where, f"{where} must be a string, number, boolean, null, list or object, got {_type_name(raw)}"
        )
    if "solution" not in raw:
        raise ProtocolError(422, f"{where}.solution", f"{where}.solution is missing")
    task = raw.get("task")
    if task is not None:
        if not isinstance(task, str):
            raise ProtocolError(422, f"{where}.task", f"{where}.task must be a string, got {_type_name(task)}")
        if task not in known_tasks:
            raise ProtocolError(
                422, f"{where}.task", f"{where}.task {task!r:.60} is not one of: {', '.join(sorted(known_tasks))}"
            )
    fields = {k: v for k, v in raw.items() if k not in ("solution", "task")}
    for key in _SIZE_FIELDS:
        if key in fields and fields[key] is not None:
            fields[key] = _size(fields[key], f"{where}.{key}")
    return Label(solution=raw["solution"], task=task, fields=fields)


def _list_field(body: dict, key: str, max_samples: int) -> list | None:
    """The list in ``body[key]``, or None when the key is absent or null."""
    values = body.get(key)
    if values is None:
        return None
    if not isinstance(values, list):
        raise ProtocolError(422, key, f"field '{key}' must be a list, got {_type_name(values)}")
    if len(values) > max_samples:
        raise ProtocolError(413, key, f"field '{key}' has {len(values)} samples, more than the limit {max_samples}")
    return values


def _check_strings(values: list, key: str) -> list[str]:
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise ProtocolError(422, f"{key}[{i}]", f"{key}[{i}] must be a string, got {_type_name(value)}")
    return values


@dataclass
class RewardRequest:
    queries: list[str]
    prompts: list[str]
    labels: list[Label]
    has_prompts: bool = True  # False: the body had no 'prompts' (empty prompts were filled in)
    has_labels: bool = True  # False: the body had no 'labels' (every sample has no label)


def parse_request(payload: Any, known_tasks: set[str], max_samples: int) -> RewardRequest:
    """Validate a decoded body. Raises :class:`ProtocolError` (422/413) naming the first bad field."""
    if not isinstance(payload, dict):
        raise ProtocolError(422, None, f"body must be a JSON object, got {_type_name(payload)}")
    if payload.get("query") is None:
        raise ProtocolError(422, "query", "missing field 'query'")
    queries = _check_strings(_list_field(payload, "query", max_samples) or [], "query")
    prompts = _list_field(payload, "prompts", max_samples)
    raw_labels = _list_field(payload, "labels", max_samples)
    lengths = {"query": len(queries)}
    if prompts is not None:
        lengths["prompts"] = len(prompts)
    if raw_labels is not None:
        lengths["labels"] = len(raw_labels)
    if len(set(lengths.values())) > 1:
        bad = next(k for k in ("prompts", "labels") if k in lengths and lengths[k] != len(queries))
        raise ProtocolError(
            422, bad, "lists of unequal length: " + ", ".join(f"{k} has {n}" for k, n in lengths.items())
        )
    has_prompts, has_labels = prompts is not None, raw_labels is not None
    prompts = _check_strings(prompts, "prompts") if prompts is not None else [""] * len(queries)
    if raw_labels is None:
        labels = [NO_LABEL] * len(queries)
    else:
        labels = [parse_label(raw, f"labels[{i}]", known_tasks) for i, raw in enumerate(raw_labels)]
    return RewardRequest(queries, prompts, labels, has_prompts=has_prompts, has_labels=has_labels)
