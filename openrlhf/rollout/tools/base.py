"""What a tool is: a name, a JSON schema of its arguments (for chat templates that list tools) and a function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolContext:
    """What a tool may look at besides its arguments: the episode's images (the prompt's, then the tools')."""

    images: list[Any] = field(default_factory=list)


@dataclass
class ToolResult:
    """A tool's answer: text for the model, and images added to the conversation (the crop tool)."""

    text: str
    images: list[Any] = field(default_factory=list)
    error: bool = False


class ToolError(ValueError):
    """A call the tool refuses (bad arguments, a failure); the message is what the model reads."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any], ToolContext], ToolResult]

    def schema(self) -> dict[str, Any]:
        """The OpenAI / Hugging Face function schema (``apply_chat_template(..., tools=[...])``)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def required(self, arguments: dict[str, Any]) -> None:
        """Raise ToolError naming the missing or unknown arguments."""
        props = self.parameters.get("properties", {})
        missing = [k for k in self.parameters.get("required", []) if k not in arguments]
        unknown = [k for k in arguments if k not in props]
        if missing or unknown:
            parts = ([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])
            raise ToolError(f"{self.name}: " + ", ".join(parts) + f" (arguments: {sorted(props)})")
