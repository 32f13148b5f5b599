"""The tool-call protocol of multi-turn rollouts (Qwen / Hermes form), in both directions.

The model calls: ``<tool_call>{"name": NAME, "arguments": {...}}</tool_call>``; the answers come back in one user
turn of Qwen's chat form (:func:`tool_response_turn`)::

    <|im_start|>user
    <tool_response>
    ANSWER
    </tool_response><|im_end|>
    <|im_start|>assistant

one ``<tool_response>`` block per call, in order.

Every ``<tool_call>`` block of a turn is one call, in order. A block that is not a JSON object with a string
``name`` and an object ``arguments`` (a JSON string holding an object is accepted too) becomes a
:class:`ToolCall` with ``error`` set, so the model is told what was wrong instead of the episode failing.
An opening tag without its closing tag counts as a malformed call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)(?:" + re.escape(CLOSE) + r"|$)", re.S)


@dataclass
class ToolCall:
    name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def _one(body: str, closed: bool) -> ToolCall:
    if not closed:
        return ToolCall(error=f"{OPEN} without {CLOSE}")
    try:
        obj = json.loads(body.strip())
    except json.JSONDecodeError as exc:
        return ToolCall(error=f"the call is not valid JSON ({exc.msg} at character {exc.pos})")
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return ToolCall(error='the call must be a JSON object {"name": ..., "arguments": {...}}')
    arguments = obj.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return ToolCall(obj["name"], error="arguments is a string that is not a JSON object")
    if not isinstance(arguments, dict):
        return ToolCall(obj["name"], error="arguments must be a JSON object")
    return ToolCall(obj["name"], arguments)


TURN_OPEN = "\n<|im_start|>user\n"
TURN_CLOSE = "<|im_end|>\n<|im_start|>assistant\n"


def tool_call_text(name: str, arguments: dict[str, Any]) -> str:
    """The model's side of one call."""
    return f"{OPEN}{json.dumps({'name': name, 'arguments': arguments})}{CLOSE}"


def tool_response_turn(answers: list[str]) -> str:
    """The user turn that carries the answers of a turn's calls back (the format above)."""
    blocks = "\n".join(f"<tool_response>\n{answer}\n</tool_response>" for answer in answers)
    return f"{TURN_OPEN}{blocks}{TURN_CLOSE}"


def parse_tool_calls(text: str) -> list[ToolCall]:
    """The calls in ``text``, in order; [] when there is none (the turn is a final answer)."""
    calls = []
    for match in _BLOCK.finditer(text):
        closed = text[match.end() - len(CLOSE) : match.end()] == CLOSE
        calls.append(_one(match.group(1), closed))
    return calls
