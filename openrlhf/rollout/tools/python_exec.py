"""The Python tool: the model's code run in the sandbox (remote_rm/sandbox, docs/sandbox.md), stdout returned.

One sandboxed process per call: no network, a fresh temporary directory, CPU / wall / memory / process / file
limits; what it printed (stdout, then stderr when it failed) is the answer, cut to 2,000 characters.
"""

from __future__ import annotations

from openrlhf.rollout.tools.base import Tool, ToolContext, ToolError, ToolResult

MAX_ANSWER_CHARS = 2000


def _run(arguments: dict, context: ToolContext) -> ToolResult:
    PYTHON.required(arguments)
    code = arguments["code"]
    if not isinstance(code, str) or not code.strip():
        raise ToolError("python: code must be a non-empty string")
    from remote_rm.sandbox import run_python

    result = run_python(code)
    text = result.stdout
    if result.returncode != 0 or result.timed_out:
        reason = f"killed ({result.killed})" if result.killed else f"exit code {result.returncode}"
        text = f"{text}{result.stderr}\n[{reason}]".strip()
    if len(text) > MAX_ANSWER_CHARS:
        text = text[:MAX_ANSWER_CHARS] + "\n[output cut]"
    return ToolResult(text, error=result.returncode != 0 or result.timed_out)


PYTHON = Tool(
    name="python",
    description="Run Python code in a sandbox (no network, no files outside its own folder); returns what it prints.",
    parameters={
        "type": "object",
        "properties": {"code": {"type": "string", "description": "a Python program; print the results"}},
        "required": ["code"],
    },
    run=_run,
)
