"""Start a real ``openrlhf-serve`` subprocess on a free loopback port (tests/serve, tests/remote_rm)."""

from __future__ import annotations

import contextlib
import time
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
    server,
    client: openai.OpenAI,
    name: str,
    prompts: list[str],
    max_tokens: int = 6,
    system: str | None = None,
    blocker_tokens: int = 0,
):
    """Greedy answers to ``prompts`` asked one at a time, then all at once from threads; returns (alone,
    together, the server's /stats before and after the concurrent round).

    ``blocker_tokens`` > 0: the concurrent round starts with one longer request (that many tokens, other sampling
    params, so it runs in a call of its own) which keeps the engine busy while the others arrive; they then wait
    together, as under load, instead of racing an engine fast enough to answer each before the next arrives.
    The blocker adds one engine call to the round."""

    def ask(text, tokens=max_tokens):
        messages = user(text, system)
        reply = client.chat.completions.create(model=name, messages=messages, max_tokens=tokens, temperature=0)
        return reply.choices[0].message.content

    alone = [ask(text) for text in prompts]
    before = httpx.get(f"{server.base_url}/stats").json()
    with ThreadPoolExecutor(len(prompts) + 1) as pool:
        blocker = pool.submit(ask, "Count from one to fifty.", blocker_tokens) if blocker_tokens else None
        if blocker is not None:
            time.sleep(0.05)  # the blocker is in the engine before the others are sent
        together = list(pool.map(ask, prompts))
        if blocker is not None:
            blocker.result()
    return alone, together, before, httpx.get(f"{server.base_url}/stats").json()
