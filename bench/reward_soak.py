"""Soak with faults: the reward service under 50 clients while its judge is slow and fails half its calls
and one of its scoring workers is killed every 10 s.

    python bench/reward_soak.py                       # 50 clients x 2000 requests
    python bench/reward_soak.py --per-client 200      # a shorter run

Every request is one of three kinds, in a fixed rotation per client:
- REC (8 of 10): two samples whose IoU rewards identify the request (a mixed-up answer shows);
- generative (1 of 10): ROUGE-L against a reference, scored in the worker pool (where the kills land); the
  expected value is computed here with the same function;
- preference (1 of 10): R1-Reward's recipe with the consistency judge (the scripted OpenAI-compatible judge
  of tests/remote_rm/rm_fake_openai.py: 0.2 s per call, every second call HTTP 500); a failed or skipped
  judgement scores the fallback, so the reward is 2.0 (judged consistent) or 1.5 (fallback).

Reported: lost requests (no 200), mixed or wrong answers, p50/p99 latency, the judge's failures and skips
(circuit breaker), worker kills and the pool's replacements. Results as JSON and a Markdown line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import yaml

from openrlhf.trainer.local_reward_server import LocalRewardServer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "remote_rm"))
from rm_fake_openai import FakeOpenAIServer  # noqa: E402
from rm_helpers import server_test_config  # noqa: E402
from test_rm_concurrency import request_for  # noqa: E402

from remote_rm.protocol import Label  # noqa: E402
from remote_rm.rewards import similarity  # noqa: E402

WORDS = "the quick brown fox jumps over a lazy dog while seven red birds sing near old green hills".split()


def generative_request(n: int) -> tuple[dict, list[float]]:
    """A one-sample ROUGE-L request whose reference and answer depend on ``n``."""
    ref = " ".join(WORDS[(n + k) % len(WORDS)] for k in range(8))
    answer = " ".join(WORDS[(n * 3 + k) % len(WORDS)] for k in range(6))
    expected = similarity.rouge(answer, Label(ref), rouge_type="rougeL", fallback_to_response=True)
    body = {"query": [answer], "prompts": [""], "labels": [{"solution": ref, "task": "rouge_l"}]}
    return body, [expected]


def preference_request(n: int) -> tuple[dict, list[float] | None]:
    query = f"<think>Response 2 explains it better. JUDGE_SOAK {n}</think><answer>2</answer>"
    return {"query": [query], "prompts": [""], "labels": [{"solution": "2", "task": "preference"}]}, None


def scoring_workers(server_pid: int) -> list[psutil.Process]:
    """The server's worker processes (multiprocessing's spawn children: pebble's scoring and math pools)."""
    try:
        children = psutil.Process(server_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            alive = child.status() != psutil.STATUS_ZOMBIE
            if alive and any("spawn_main" in part for part in child.cmdline()):  # not the resource tracker
                found.append(child)
        except psutil.Error:
            continue
    return found


def killer(server_pid: int, every_s: float, stop: threading.Event, kills: list[int]) -> None:
    """SIGKILL one worker of the server every ``every_s`` seconds until ``stop``."""
    k = 0
    while not stop.wait(every_s):
        workers = scoring_workers(server_pid)
        if not workers:
            continue
        victim = workers[k % len(workers)]
        k += 1
        try:
            victim.send_signal(signal.SIGKILL)
            kills.append(victim.pid)
        except psutil.NoSuchProcess:
            pass


async def run_clients(url: str, clients: int, per_client: int) -> dict:
    latencies: list[float] = []
    problems: list[str] = []
    judge = {"failures": 0.0, "skipped": 0.0, "judged": 0}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=180, limits=limits) as http:

        async def client(c: int) -> None:
            for k in range(per_client):
                n = c * per_client + k
                kind = k % 10
                if kind == 8:
                    body, expected = generative_request(n)
                elif kind == 9:
                    body, expected = preference_request(n)
                else:
                    body, expected = request_for(n % 5000)
                started = time.perf_counter()
                try:
                    resp = await http.post(url, content=json.dumps(body), headers={"content-type": "application/json"})
                except httpx.HTTPError as exc:
                    problems.append(f"client {c} request {k}: {type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - started)
                if resp.status_code != 200:
                    problems.append(f"client {c} request {k}: HTTP {resp.status_code}: {resp.text[:200]}")
                    continue
                out = resp.json()
                if expected is None:
                    logs = out["extra_logs"]
                    judge["failures"] += logs.get("judge_failures", 0.0)
                    judge["skipped"] += logs.get("judge_skipped", 0.0)
                    judge["judged"] += 1
                    if out["rewards"][0] not in (2.0, 1.5):
                        problems.append(f"client {c} request {k}: preference reward {out['rewards'][0]}")
                elif any(abs(a - b) > 1e-9 for a, b in zip(out["rewards"], expected, strict=True)):
                    problems.append(f"client {c} request {k}: rewards {out['rewards']} != {expected}")

        await asyncio.gather(*(client(c) for c in range(clients)))
    return {"latencies": latencies, "problems": problems, "judge": judge}


def pool_restarts(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics", timeout=30).text
    out = {}
    for line in text.splitlines():
        if line.startswith("remote_rm_pool_restarts{"):
            pool = line.split('pool="', 1)[1].split('"', 1)[0]
            out[pool] = float(line.split()[-1])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--per-client", type=int, default=2000)
    p.add_argument("--kill-every", type=float, default=10.0, help="seconds between worker kills")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    with FakeOpenAIServer(slow_s=3.0, soak_s=0.2) as judge_server:
        config = server_test_config(judge_server.base_url)
        config["judge"].update({"timeout_s": 2.0, "max_retries": 1, "concurrency": 8, "breaker_failures": 5})
        config["wordnet"] = {"enabled": False}
        config_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"reward_soak_{os.getpid()}.yaml"
        config_path.write_text(yaml.safe_dump(config))
        server = LocalRewardServer(
            config_path=str(config_path), workers=2, startup_timeout=300, extra_args=["--log-level", "warning"]
        ).start()
        stop, kills = threading.Event(), []
        thread = threading.Thread(target=killer, args=(server.pid, args.kill_every, stop, kills), daemon=True)
        try:
            thread.start()
            started = time.perf_counter()
            result = asyncio.run(run_clients(server.url, args.clients, args.per_client))
            elapsed = time.perf_counter() - started
            stop.set()
            thread.join(timeout=30)
            restarts = pool_restarts(server.base_url)
            if result["problems"]:
                print(f"server log ({server.log_path}), last lines:", file=sys.stderr)
                print("\n".join(server.log_path.read_text().splitlines()[-40:]), file=sys.stderr)
        finally:
            stop.set()
            server.stop(timeout=30)
            config_path.unlink(missing_ok=True)

    latencies = sorted(result["latencies"])
    requests = args.clients * args.per_client
    summary = {
        "requests": requests,
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests_per_s": round(requests / elapsed, 1),
        "lost_or_wrong": len(result["problems"]),
        "first_problems": result["problems"][:5],
        "p50_latency_s": round(statistics.median(latencies), 4) if latencies else None,
        "p99_latency_s": round(latencies[int(0.99 * (len(latencies) - 1))], 4) if latencies else None,
        "judged_requests": result["judge"]["judged"],
        "judge_failures": result["judge"]["failures"],
        "judge_skipped_by_breaker": result["judge"]["skipped"],
        "worker_kills": len(kills),
        "pool_restarts": restarts,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(summary, indent=2))
    print(
        f"\n| soak with faults | {requests} requests, {args.clients} clients, {summary['seconds']} s "
        f"({summary['requests_per_s']}/s) | lost or wrong: {summary['lost_or_wrong']} | p50 / p99: "
        f"{summary['p50_latency_s']} / {summary['p99_latency_s']} s | judge: {summary['judged_requests']} asked, "
        f"{summary['judge_failures']:g} failed, {summary['judge_skipped_by_breaker']:g} skipped by the breaker | "
        f"{summary['worker_kills']} workers killed, pool restarts {restarts} |"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))
    return 0 if not result["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
