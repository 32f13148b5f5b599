"""A reward server that answers exactly as OpenRLHF's ``openrlhf/cli/serve_rm.py`` does.

serve_rm.py (OpenRLHF commit 3c3be623) reads ``data.get("query")``, scores the queries with a reward
model into ``scores`` (the model's output tensor, ``.tolist()``), and answers
``JSONResponse({"rewards": rewards, "scores": rewards, "extra_logs": {"dummy_scores": rewards}})``:
per-sample lists everywhere, ``extra_logs`` included. This app does the same with FastAPI, with a tiny
deterministic "reward model" in place of the real one: how many distinct characters the last 24
characters of the query use, over 24 (so samples of one prompt get different rewards).

Run in a thread (``ServeRMStyleServer``) or as ``python serve_rm_style_server.py --port P``.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from trainer_parts.reward_test_server import ThreadedApp  # tests/ is on sys.path (rootdir)


def model_scores(queries: list[str]) -> torch.Tensor:
    """The stand-in reward model: one score per query, in [0, 1], as a float tensor."""
    return torch.tensor([len(set(q[-24:])) / 24.0 for q in queries], dtype=torch.float32)


def build_app(requests: list[dict[str, Any]] | None = None) -> FastAPI:
    app = FastAPI()
    seen = requests if requests is not None else []

    @app.post("/get_reward")
    async def get_reward(request: Request):
        data = await request.json()
        seen.append(data)
        queries = data.get("query")
        rewards = model_scores(queries).tolist()  # serve_rm: r = self.reward_model(...); r.tolist()
        result = {"rewards": rewards, "scores": rewards, "extra_logs": {"dummy_scores": rewards}}
        return JSONResponse(result)

    return app


class ServeRMStyleServer(ThreadedApp):
    """The app under uvicorn in a daemon thread; ``requests`` holds every body it received."""

    name = "serve_rm-style test server"

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        super().__init__(build_app(self.requests))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    uvicorn.run(build_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
