"""The bodies of OpenAI's chat completions API, as the ``openai`` client sends and parses them.

Request (``POST /v1/chat/completions``): ``model``, ``messages`` (each ``{"role", "content"}``; content a string
or a list of ``{"type": "text", "text"}`` / ``{"type": "image_url", "image_url": {"url": "data:..."}}`` parts,
checked by :mod:`openrlhf.serve.messages`), and the sampling fields ``temperature`` (0 = greedy), ``top_p``,
``top_k`` (vLLM's extension), ``max_completion_tokens`` (or the older ``max_tokens``), ``n``, ``seed``, ``stop``.
A field outside this list is refused by name (a silently ignored field would be a surprise), except ``user``
and ``stream: false``, which change nothing.

Response: :class:`ChatCompletion` (``object: "chat.completion"``, choices with ``finish_reason`` "stop" or
"length", usage). Errors: OpenAI's ``{"error": {"message", "type", "param", "code"}}`` (:class:`RequestError`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RequestError(Exception):
    """A refused request: HTTP ``status``, the request field at fault (``param``, e.g. "messages[0].content"),
    a message that names it, and OpenAI's error ``code`` where it has one ("model_not_found", "invalid_api_key")."""

    def __init__(self, status: int, param: str | None, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.message, self.code = status, param, message, code

    def body(self) -> dict[str, Any]:
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


class ChatMessage(BaseModel):
    """One chat turn; ``content`` is checked part by part in :func:`openrlhf.serve.messages.to_sample`."""

    model_config = ConfigDict(extra="ignore")  # "name", "refusal", ... carry nothing the model sees

    role: Literal["system", "developer", "user", "assistant"]
    content: Any = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2, description="default 1.0; 0 is greedy")
    top_p: float | None = Field(None, gt=0, le=1, description="default 1.0")
    top_k: int | None = Field(None, ge=-1, description="vLLM's extension; -1 or absent: off")
    max_tokens: int | None = Field(None, ge=1, description="the older name of max_completion_tokens")
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1, description="default 1")
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    user: str | None = None

    def stop_strings(self) -> list[str]:
        """``stop`` as a list, without empty strings."""
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Usage(BaseModel):
    """prompt_tokens: the prompt once (image tokens included); completion_tokens: summed over the n choices."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "openrlhf"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
