"""Tools a multi-turn rollout can give the policy (``rollout.tools``), called in the Qwen/Hermes form
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (:mod:`openrlhf.rollout.tools.calls`).

Each tool is a function ``(arguments: dict, context: ToolContext) -> ToolResult``: a text answer and,
for the image tool, new images. A bad call (unknown tool, malformed JSON, wrong arguments, a failing tool)
is answered with an error text the model sees; the episode goes on.
"""

from __future__ import annotations

from openrlhf.rollout.tools.base import Tool, ToolContext, ToolResult
from openrlhf.rollout.tools.calculator import CALCULATOR
from openrlhf.rollout.tools.crop import CROP
from openrlhf.rollout.tools.python_exec import PYTHON

BUILTIN_TOOLS: dict[str, Tool] = {tool.name: tool for tool in (CALCULATOR, PYTHON, CROP)}

__all__ = ["BUILTIN_TOOLS", "Tool", "ToolContext", "ToolResult"]
