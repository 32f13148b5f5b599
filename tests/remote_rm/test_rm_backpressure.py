"""Back-pressure: past limits.max_in_flight_samples a request gets 503 + Retry-After (never the only one),
and the trainer's client waits it out. The real app over real HTTP on loopback (uvicorn in a thread)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import uvicorn

from openrlhf.trainer.reward_client import RemoteRewardClient
from remote_rm.app import create_app
from remote_rm.settings import parse_config

CONFIG = """
default_recipe: fmt
recipes:
  fmt:
    components:
      - {fn: format}
limits: {max_in_flight_samples: 6, retry_after_s: 1, max_requests_per_client: 2}
pool: {workers: 1}
wordnet: {enabled: false}
"""


class SlowScores:
    """Wraps the real scorer so each request stays in flight for ``delay`` seconds (and counts them)."""

    def __init__(self, scorer, delay: float) -> None:
        self.inner, self.delay, self.calls = scorer.score, delay, 0

    async def __call__(self, request):
        self.calls += 1
        await asyncio.sleep(self.delay)
        return await self.inner(request)


def serve(app):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    return server, thread, f"http://127.0.0.1:{port}"


def body(n: int) -> dict:
    return {"query": ["<think>a</think><answer>b</answer>"] * n, "prompts": [""] * n, "labels": ["x"] * n}


def test_busy_server_answers_503_with_retry_after_and_the_client_waits():
    app = create_app(parse_config(CONFIG))
    server, thread, base = serve(app)
    slow = SlowScores(app.state.scorer, delay=1.5)
    app.state.scorer.score = slow
    try:
        results: dict = {}

        def first() -> None:
            results["first"] = httpx.post(f"{base}/get_reward", json=body(4), timeout=30)

        t = threading.Thread(target=first)
        t.start()
        time.sleep(0.5)  # the first request (4 samples) is being scored
        busy = httpx.post(f"{base}/get_reward", json=body(4), timeout=30)  # 4 + 4 > 6
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert "max_in_flight_samples=6" in busy.json()["detail"]
        small = httpx.post(f"{base}/get_reward", json=body(2), timeout=30)  # 4 + 2 fits
        assert small.status_code == 200
        t.join()
        assert results["first"].status_code == 200
        # one request alone is always taken, however large
        assert httpx.post(f"{base}/get_reward", json=body(10), timeout=30).status_code == 200
        # the trainer's client, with no retries at all, gets through by waiting
        t = threading.Thread(target=first)
        t.start()
        time.sleep(0.5)
        with RemoteRewardClient(f"{base}/get_reward", retries=0, batch_size=8) as client:
            started = time.monotonic()
            result = client.score(["<think>a</think><answer>b</answer>"] * 8, [""] * 8, ["x"] * 8)
            waited = time.monotonic() - started
        t.join()
        assert result.rewards == [1.0] * 8 and waited >= 1.0
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        # one client with 2 requests in flight already: its third waits (the samples would fit)
        threads = [threading.Thread(target=lambda: httpx.post(f"{base}/get_reward", json=body(1), timeout=30))]
        threads.append(threading.Thread(target=lambda: httpx.post(f"{base}/get_reward", json=body(1), timeout=30)))
        for thread_ in threads:
            thread_.start()
        time.sleep(0.5)
        third = httpx.post(f"{base}/get_reward", json=body(1), timeout=30)
        assert third.status_code == 503 and "max_requests_per_client" in third.json()["detail"]
        for thread_ in threads:
            thread_.join()
        assert httpx.post(f"{base}/get_reward", json=body(1), timeout=30).status_code == 200
        rejected = next(line for line in metrics.splitlines() if line.startswith("remote_rm_busy_rejections_total"))
        assert float(rejected.split()[1]) >= 2  # ours above, and at least one the client waited out
    finally:
        server.should_exit = True
        thread.join(timeout=30)
