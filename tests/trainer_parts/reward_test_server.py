"""A small real reward server on loopback for the client tests, whose failures the tests control.

It speaks the reward protocol with a real rule (reward 1.0 when the label text occurs in the query),
and can be told to answer 5xx for the next N requests, answer slowly, answer a 4xx, or answer malformed
bodies. Run in a thread (``ThreadedRewardServer``) or as a subprocess (``python reward_test_server.py
--port P``) so a test can kill it.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def contains_reward(query: str, label: Any) -> float:
    text = label["solution"] if isinstance(label, dict) else str(label)
    return 1.0 if text and text in query else 0.0


@dataclass
class Behaviour:
    """What the server does with the next requests; tests change it between calls."""

    fail_next: int = 0
    fail_status: int = 503
    retry_after: str | None = None  # a Retry-After header on the failures (a busy server's back-pressure)
    delay: float = 0.0
    mode: str = "full"  # full | rewards_only | bare_list | wrong_length | not_json | reject | nan
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


def build_app(behaviour: Behaviour) -> Starlette:
    async def get_reward(request: Request) -> Response:
        body = await request.json()
        behaviour.requests.append(body)
        behaviour.headers.append(dict(request.headers))
        behaviour.in_flight += 1
        behaviour.max_in_flight = max(behaviour.max_in_flight, behaviour.in_flight)
        try:
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            if behaviour.fail_next > 0:
                behaviour.fail_next -= 1
                headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after is not None else None
                return PlainTextResponse("overloaded, try later", status_code=behaviour.fail_status, headers=headers)
            return answer(body, behaviour.mode)
        finally:
            behaviour.in_flight -= 1

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/get_reward", get_reward, methods=["POST"]), Route("/health", health)])


def answer(body: dict[str, Any], mode: str) -> Response:
    if mode == "reject":
        return JSONResponse({"detail": "labels[1]: field 'solution' is required"}, status_code=422)
    if mode == "not_json":
        return PlainTextResponse("<html>proxy error page</html>")
    rewards = [contains_reward(q, lab) for q, lab in zip(body["query"], body["labels"], strict=True)]
    if mode == "bare_list":
        return JSONResponse({"rewards": rewards})
    if mode == "wrong_length":
        return JSONResponse({"rewards": rewards[:-1]})
    if mode == "nan":
        return Response('{"rewards": [NaN' + ", 0.0" * (len(rewards) - 1) + "]}", media_type="application/json")
    if mode == "rewards_only":
        return JSONResponse({"rewards": rewards, "scores": rewards})
    fmt = [1.0 if q.strip().endswith(".") else 0.0 for q in body["query"]]
    return JSONResponse(
        {
            "rewards": [r + 0.5 * f for r, f in zip(rewards, fmt, strict=True)],
            "scores": rewards,
            "extra_logs": {"accuracy": sum(rewards) / len(rewards), "batch_size": float(len(rewards))},
            "components": {"accuracy": rewards, "format": fmt},
        }
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThreadedApp:
    """An ASGI app under uvicorn in a daemon thread of the test process, on a free loopback port."""

    name = "test server"

    def __init__(self, app) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/get_reward"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ThreadedRewardServer(ThreadedApp):
    """The app under uvicorn in a daemon thread of the test process."""

    name = "test reward server"

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        super().__init__(build_app(self.behaviour))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(Behaviour()), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
