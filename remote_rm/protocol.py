"""The HTTP protocol: validating a /get_reward body into samples, with errors that name the field.

Request: ``{"query": [str], "prompts": [str], "labels": [str | object]}`` (OpenRLHF's remote RM).
A label is a plain string (the solution; the default recipe applies) or an object
``{"solution": ..., "task": "rec" | ..., "image_size": [w, h], "input_size": [w, h], ...}``.
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


def _type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


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


def _size(value: Any, where: str) -> tuple[float, float]:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in value)
    )
    if not ok:
        raise ProtocolError(422, where, f"{where} must be [width, height] with two positive numbers, got {value!r:.80}")
    return float(value[0]), float(value[1])


def parse_label(raw: Any, where: str, known_tasks: set[str]) -> Label:
    """A label from its JSON value: a string, or an object with ``solution`` and optional ``task``."""
    if isinstance(raw, str):
        return Label(solution=raw)
    if not isinstance(raw, dict):
        raise ProtocolError(422, where, f"{where} must be a string or an object, got {_type_name(raw)}")
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


def _string_list(body: dict, key: str, max_samples: int) -> list[str]:
    if key not in body:
        raise ProtocolError(422, key, f"missing field '{key}'")
    values = body[key]
    if not isinstance(values, list):
        raise ProtocolError(422, key, f"field '{key}' must be a list, got {_type_name(values)}")
    if len(values) > max_samples:
        raise ProtocolError(413, key, f"field '{key}' has {len(values)} samples, more than the limit {max_samples}")
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise ProtocolError(422, f"{key}[{i}]", f"{key}[{i}] must be a string, got {_type_name(value)}")
    return values


@dataclass
class RewardRequest:
    queries: list[str]
    prompts: list[str]
    labels: list[Label]


def parse_request(payload: Any, known_tasks: set[str], max_samples: int) -> RewardRequest:
    """Validate a decoded body. Raises :class:`ProtocolError` (422/413) naming the first bad field."""
    if not isinstance(payload, dict):
        raise ProtocolError(422, None, f"body must be a JSON object, got {_type_name(payload)}")
    queries = _string_list(payload, "query", max_samples)
    prompts = _string_list(payload, "prompts", max_samples)
    if "labels" not in payload:
        raise ProtocolError(422, "labels", "missing field 'labels'")
    raw_labels = payload["labels"]
    if not isinstance(raw_labels, list):
        raise ProtocolError(422, "labels", f"field 'labels' must be a list, got {_type_name(raw_labels)}")
    if not (len(queries) == len(prompts) == len(raw_labels)):
        raise ProtocolError(
            422,
            "labels" if len(queries) == len(prompts) else "prompts",
            f"lists of unequal length: query has {len(queries)}, prompts has {len(prompts)}, "
            f"labels has {len(raw_labels)}",
        )
    labels = [parse_label(raw, f"labels[{i}]", known_tasks) for i, raw in enumerate(raw_labels)]
    return RewardRequest(queries, prompts, labels)
