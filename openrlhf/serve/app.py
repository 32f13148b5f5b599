"""The FastAPI app of ``openrlhf-serve``: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``,
``GET /stats`` (requests answered, engine calls, largest batch).

Each request waits in a worker thread (the event loop stays free for /health and for refusing bad requests);
requests waiting together share engine calls (:class:`openrlhf.serve.batching.RequestBatcher`). Every refusal is
OpenAI's error body ``{"error": {"message", "type", "param", "code"}}``: 400 for a malformed request (the message
starts with the field, e.g. ``temperature: Input should be less than or equal to 2``), 404 ``model_not_found``
for a model this server does not serve, 401 ``invalid_api_key`` without the bearer token when one is required
(``/health`` and ``/stats``, counts only, stay open), 500 for a failure inside generation (logged).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from openrlhf.serve.model import ChatModel
from openrlhf.serve.schema import ChatCompletion, ChatCompletionRequest, ModelCard, ModelList, RequestError

log = logging.getLogger("openrlhf.serve")

_TYPE_STEPS = {"str", "int", "float", "bool", "none"}  # pydantic's union-member steps in an error's location


def field_path(loc: tuple) -> str:
    """A pydantic error location as the request field: ('body', 'messages', 0, 'role') -> "messages[0].role"."""
    path = ""
    for step in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(step, int):
            path += f"[{step}]"
        elif step in _TYPE_STEPS or "[" in step or "-" in step:
            continue
        else:
            path += f".{step}" if path else step
    return path


def validation_error(exc: RequestValidationError) -> RequestError:
    """The first validation problem as a 400 that names its field."""
    errors = exc.errors()
    if not errors:
        return RequestError(400, None, "invalid request body")
    err = errors[0]
    path = field_path(tuple(err.get("loc", ())))
    kind = err.get("type", "")
    if kind == "json_invalid":
        return RequestError(400, None, f"the body is not valid JSON: {err.get('ctx', {}).get('error', err['msg'])}")
    if not path:
        return RequestError(400, None, f"the body must be a JSON object with model and messages ({err['msg']})")
    if kind == "extra_forbidden":
        known = ", ".join(ChatCompletionRequest.model_fields)
        return RequestError(400, path, f"{path}: this server does not support the field (it takes {known})")
    # A union field (stop: str | list[str]) reports one error per member: say them together.
    same = [e for e in errors if field_path(tuple(e.get("loc", ()))) == path]
    messages = list(dict.fromkeys("field required" if e.get("type") == "missing" else e["msg"] for e in same))
    others = len(errors) - len(same)
    more = f" (and {others} more problem(s))" if others else ""
    return RequestError(400, path, f"{path}: {'; or '.join(messages)}{more}")


def create_app(model: ChatModel, token: str | None = None) -> FastAPI:
    """The server for ``model``; with ``token``, /v1/* requires ``Authorization: Bearer <token>``."""
    app = FastAPI(title="openrlhf-serve")
    app.state.model = model
    expected = f"Bearer {token}".encode() if token else None

    @app.exception_handler(RequestError)
    async def _refused(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = validation_error(exc)
        return JSONResponse(error.body(), status_code=error.status)

    async def authorized(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise RequestError(
                401, None, "missing or wrong API key (Authorization: Bearer ...)", code="invalid_api_key"
            )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model.name}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return model.batcher.stats()

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def models() -> ModelList:
        return ModelList(data=[model.card()])

    @app.get("/v1/models/{model_id:path}", dependencies=[Depends(authorized)])
    async def model_card(model_id: str) -> ModelCard:
        if model_id != model.name:
            message = f"The model `{model_id}` does not exist (this server serves `{model.name}`)"
            raise RequestError(404, "model", message, code="model_not_found")
        return model.card()

    @app.post("/v1/chat/completions", dependencies=[Depends(authorized)])
    async def chat_completions(body: ChatCompletionRequest) -> ChatCompletion:
        try:
            return await anyio.to_thread.run_sync(model.complete, body)
        except RequestError:
            raise
        except Exception as exc:
            log.exception("generation failed")
            raise RequestError(500, None, f"generation failed: {type(exc).__name__}: {str(exc)[:300]}") from exc

    return app
