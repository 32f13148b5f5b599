"""The built-in tool environment (``rollout.tools``): the policy calls tools until it answers without one.

Each turn's text is searched for ``<tool_call>`` blocks (the protocol: :mod:`openrlhf.utils.tool_protocol`). With
calls, each is run and the answers go back in one user turn, one ``<tool_response>`` block per call (a bad call's
block holds its error). A turn without a call
is the final answer and ends the episode, as does the ``rollout.max_turns``-th turn. The environment gives no
reward: the run's reward source scores the final answer (openrlhf/trainer/agent_episodes.py:score_final_turns:
the query is the whole conversation, the prompt all of it before the last turn).
Logged per episode (means in ``reward_log/``): ``tool_calls``, ``tool_errors``, ``tool_call_rate`` (1 when it
called any tool).
"""

from __future__ import annotations

import asyncio

from openrlhf.rollout.tools import BUILTIN_TOOLS, Tool, ToolContext, ToolResult
from openrlhf.rollout.tools.base import ToolError
from openrlhf.utils.agent import AgentInstanceBase, MultiTurnAgentExecutor
from openrlhf.utils.tool_protocol import ToolCall, parse_tool_calls, tool_response_turn


def run_call(call: ToolCall, tools: dict[str, Tool], context: ToolContext) -> ToolResult:
    """One call's answer; every failure is an answer with ``error`` set, never an exception."""
    if call.error:
        return ToolResult(f"error: {call.error}", error=True)
    tool = tools.get(call.name)
    if tool is None:
        return ToolResult(f"error: no tool {call.name!r} (tools: {', '.join(sorted(tools))})", error=True)
    try:
        return tool.run(call.arguments, context)
    except ToolError as exc:
        return ToolResult(f"error: {exc}", error=True)
    except Exception as exc:  # a tool's own failure is the model's answer, not the run's end
        return ToolResult(f"error: {call.name} failed: {type(exc).__name__}: {exc}", error=True)


def tool_executor(names: list[str], max_turns: int) -> MultiTurnAgentExecutor:
    """A MultiTurnAgentExecutor over a :class:`ToolEnvironment` with the named built-in tools."""
    unknown = [name for name in names if name not in BUILTIN_TOOLS]
    if unknown:
        raise ValueError(f"rollout.tools: unknown tool(s) {unknown}; built in: {sorted(BUILTIN_TOOLS)}")
    tools = {name: BUILTIN_TOOLS[name] for name in names}
    environment = type("ToolEnvironment", (ToolEnvironment,), {"tools": tools, "max_turns": max_turns})
    return MultiTurnAgentExecutor(environment)


class ToolEnvironment(AgentInstanceBase):
    tools: dict[str, Tool] = {}
    max_turns: int = 4

    def __init__(self, *args, **kwargs):
        self.turn = 0
        self.calls = 0
        self.errors = 0
        self.context = ToolContext()

    async def reset(self, states: dict, **kwargs):
        self.context = ToolContext(images=list(states.get("images") or []))
        return {"observation": states["observation"]}

    async def step(self, states: dict, **kwargs):
        self.turn += 1
        calls = parse_tool_calls(states["action_text"])
        done = not calls or self.turn >= self.max_turns
        feedback, images = "", []
        if not done:
            results = await asyncio.to_thread(lambda: [run_call(c, self.tools, self.context) for c in calls])
            self.calls += len(calls)
            self.errors += sum(r.error for r in results)
            images = [image for r in results for image in r.images]
            self.context.images.extend(images)
            feedback = tool_response_turn([r.text for r in results])
        return {
            "rewards": 0.0,
            "environment_feedback": feedback,
            "environment_images": images,
            "done": done,
            "extra_logs": {
                "tool_calls": float(self.calls),
                "tool_errors": float(self.errors),
                "tool_call_rate": float(self.calls > 0),
            },
        }
