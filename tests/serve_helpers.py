"""Start a real ``openrlhf-serve`` subprocess on a free loopback port (tests/serve, tests/remote_rm)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai

from openrlhf.serve.local import LocalModelServer


def start_serve(
    model_path: Path, workdir: Path, *, name: str, args: list[str] = (), env: dict | None = None, timeout: float = 240
) -> LocalModelServer:
    """openrlhf-serve for ``model_path`` on one torch thread, started (``/health`` answered); ``.stop()`` it."""
    server = LocalModelServer(
        model_path, name=name, log_dir=workdir, startup_timeout=timeout, extra_args=list(args), env=env
    )
    return server.start()


@contextlib.contextmanager
def serving(model_path: Path, workdir: Path, *, name: str, args: list[str] = ()) -> Iterator[tuple]:
    """(server, its openai client): openrlhf-serve started for the block, stopped after it."""
    server = start_serve(model_path, workdir, name=name, args=args)
    try:
        yield server, openai.OpenAI(base_url=server.openai_url, api_key="unused", max_retries=0, timeout=120)
    finally:
        server.stop()


def user(text: str, system: str | None = None) -> list[dict]:
    """A chat of one user turn (after a system turn when given)."""
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": text}]


def alone_then_together(
    server, client: openai.OpenAI, name: str, prompts: list[str], max_tokens: int = 6, system: str | None = None
):
    """Greedy answers to ``prompts`` asked one at a time, then all at once from threads; returns (alone,
    together, the server's /stats before and after the concurrent round)."""

    def ask(text):
        messages = user(text, system)
        reply = client.chat.completions.create(model=name, messages=messages, max_tokens=max_tokens, temperature=0)
        return reply.choices[0].message.content

    alone = [ask(text) for text in prompts]
    before = httpx.get(f"{server.base_url}/stats").json()
    with ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(ask, prompts))
    return alone, together, before, httpx.get(f"{server.base_url}/stats").json()
