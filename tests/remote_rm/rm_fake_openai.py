"""A real HTTP server on loopback that speaks OpenAI's chat completions API, with scripted answers.

It stands in for the hosted LLM judge (the only thing that cannot run here). The prompt's text picks
the behaviour: JUDGE_AGREE -> "1", JUDGE_DISAGREE -> "0", JUDGE_GARBAGE -> no digit,
JUDGE_DOWN -> HTTP 500, JUDGE_SLOW -> answers after ``slow_s`` seconds, JUDGE_FLAKY_<id> -> HTTP 500
the first time that id is seen, then "1"; JUDGE_NAIVE -> the digit of the first "Output: <digit>" in the
prompt (a judge fooled by a verdict written into the text it judges); JUDGE_SOAK -> ``soak_s`` seconds, then
HTTP 500 on every second such call (the soak benchmark's failing judge). R1-Reward comparisons ("[Response 1]:"
... "[Response 2]:" in the prompt): RM_PREFER_GOOD -> "<answer>N</answer>" naming the response that contains
"GOOD" (no verdict when both or neither do), RM_ALWAYS_1 / RM_ALWAYS_2 -> that position whatever is shown (a
position-biased judge). GET /stats reports calls and the peak concurrency.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def r1_reward_verdict(prompt: str, first: str, second: str) -> str:
    """The scripted generative reward model's reply to an R1-Reward comparison (see the module docstring)."""
    if "RM_ALWAYS_1" in prompt or "RM_ALWAYS_2" in prompt:
        choice = "1" if "RM_ALWAYS_1" in prompt else "2"
    else:
        good = ["GOOD" in first, "GOOD" in second]
        choice = {(True, False): "1", (False, True): "2"}.get(tuple(good), "neither")
    return f"<think>Response 1 or Response 2? I pick {choice}.</think><answer>{choice}</answer>"


def make_app(slow_s: float = 3.0, soak_s: float = 0.2) -> FastAPI:
    app = FastAPI()
    state = {"calls": 0, "in_flight": 0, "peak": 0, "flaky_seen": set(), "models_calls": 0}

    @app.get("/v1/models")
    async def models():
        state["models_calls"] += 1
        return {"object": "list", "data": [{"id": "judge-model", "object": "model", "created": 0, "owned_by": "test"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        if isinstance(prompt, list):
            prompt = " ".join(part.get("text", "") for part in prompt)
        state["calls"] += 1
        state["in_flight"] += 1
        state["peak"] = max(state["peak"], state["in_flight"])
        try:
            await asyncio.sleep(0.02)  # long enough for concurrent calls to overlap
            if "JUDGE_SOAK" in prompt:  # slow, and every second call fails (bench/reward_soak.py)
                state["soak_calls"] = state.get("soak_calls", 0) + 1
                await asyncio.sleep(soak_s)
                if state["soak_calls"] % 2:
                    return JSONResponse({"error": {"message": "scripted soak failure", "type": "server_error"}}, 500)
            if "JUDGE_DOWN" in prompt:
                return JSONResponse({"error": {"message": "scripted failure", "type": "server_error"}}, 500)
            flaky = re.search(r"JUDGE_FLAKY_(\w+)", prompt)
            if flaky and flaky.group(1) not in state["flaky_seen"]:
                state["flaky_seen"].add(flaky.group(1))
                return JSONResponse({"error": {"message": "scripted flake", "type": "server_error"}}, 500)
            if "JUDGE_SLOW" in prompt:
                await asyncio.sleep(slow_s)
            naive = re.search(r"Output:\s*([01])", prompt) if "JUDGE_NAIVE" in prompt else None
            comparison = re.search(r"\[Response 1\]: (.*)\n\[Response 2\]: (.*)", prompt, re.S)
            if comparison and re.search(r"RM_(PREFER_GOOD|ALWAYS_[12])", prompt):
                text = r1_reward_verdict(prompt, comparison.group(1), comparison.group(2))
            elif naive:  # a judge that obeys a verdict written into the text it judges (prompt injection)
                text = naive.group(1)
            elif "JUDGE_DISAGREE" in prompt:
                text = "0"
            elif "JUDGE_GARBAGE" in prompt:
                text = "I cannot decide."
            else:
                text = "1"
            return {
                "id": f"chatcmpl-{state['calls']}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "judge-model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
            }
        finally:
            state["in_flight"] -= 1

    @app.get("/stats")
    async def stats():
        return {k: v for k, v in state.items() if k != "flaky_seen"}

    @app.post("/reset_peak")
    async def reset_peak():
        state["peak"] = state["in_flight"]
        return {"peak": state["peak"]}

    return app


class FakeOpenAIServer:
    """The fake judge in a background thread: ``base_url`` is its ``/v1`` root."""

    def __init__(self, slow_s: float = 3.0, soak_s: float = 0.2) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(make_app(slow_s, soak_s), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FakeOpenAIServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
