"""50 concurrent clients x 40 requests each (2000 in all): no errors, and every answer belongs to its
own request (R1-Reward's server, with one shared queue, mixes them up under load).

The full 50 x 2000 run is the benchmark ``bench/reward_server.py --soak``.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from remote_rm.rewards.boxes import box_iou

CLIENTS = 50
REQUESTS_PER_CLIENT = 40


def request_for(n: int) -> tuple[dict, list[float]]:
    """A two-sample REC request whose rewards identify it: IoUs 100/(100+n) and 50/(100+n)."""
    gt = [0, 0, 100, 100 + n]
    queries = [
        "<|im_start|>assistant\n<think>r</think><answer>[0, 0, 100, 100]</answer><|im_end|>",
        "<|im_start|>assistant\n<think>r</think><answer>[0, 0, 50, 100]</answer><|im_end|>",
    ]
    expected = [1.0 + box_iou((0, 0, 100, 100), gt), 1.0 + box_iou((0, 0, 50, 100), gt)]
    body = {"query": queries, "prompts": ["", ""], "labels": [{"solution": gt, "task": "rec"}] * 2}
    return body, expected


async def run_clients(url: str, clients: int, per_client: int) -> list[str]:
    problems: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:

        async def client(c: int) -> None:
            for k in range(per_client):
                n = c * per_client + k
                body, expected = request_for(n)
                resp = await http.post(url, content=json.dumps(body), headers={"content-type": "application/json"})
                if resp.status_code != 200:
                    problems.append(f"request {n}: HTTP {resp.status_code} {resp.text[:200]}")
                    continue
                got = resp.json()["rewards"]
                if got != pytest.approx(expected, abs=1e-12):
                    problems.append(f"request {n}: got {got}, expected {expected}")

        await asyncio.gather(*(client(c) for c in range(clients)))
    return problems


def test_50_concurrent_clients_each_get_their_own_answers(server):
    problems = asyncio.run(run_clients(server.url, CLIENTS, REQUESTS_PER_CLIENT))
    assert not problems, f"{len(problems)} bad answers, e.g. {problems[:3]}"
