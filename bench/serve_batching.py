"""openrlhf-serve with and without request batching, asked as the reward service asks its judge.

    python bench/serve_batching.py [--model DIR] [--requests 200] [--concurrency 8] [--batch-sizes 1,32]

The consistency-judge prompts of the R1-Reward demo (openrlhf/data/synthetic_preference.py, ~420 tokens each,
max_tokens 4, greedy) go through the reward service's own judge client (remote_rm.judge.JudgeClient) at the
given concurrency to an ``openrlhf-serve`` on loopback started with each ``--max-batch-size``, one after the
other in this run; the model is the tiny LM (built once) unless ``--model`` names one. Reported per setting:
wall time, requests/s, engine calls and the largest batch (from ``/stats``), and the ratio against batch size 1.
Each prompt is asked once (no retries), whatever the reply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx

from openrlhf.data.synthetic_preference import write_preference_task
from openrlhf.serve.local import LocalModelServer
from remote_rm.judge import JudgeClient, parse_verdict
from remote_rm.settings import JudgeEndpoint


async def ask_all(url: str, prompts: list[str], concurrency: int) -> int:
    # No retries: one call per prompt, whether or not the reply holds a verdict (an untrained model's may not).
    endpoint = JudgeEndpoint(base_url=url, model="judge", max_tokens=4, concurrency=concurrency, max_retries=0)
    client = JudgeClient(endpoint)
    try:
        verdicts = await asyncio.gather(*(client.ask(p, parse_verdict, "0 or 1") for p in prompts))
    finally:
        await client.close()
    return sum(v.calls for v in verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="checkpoint to serve (default: the tiny LM, built here)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    parser.add_argument("--out", default="", help="JSON results")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="serve_batching_"))
    model = args.model
    if not model:
        from openrlhf.models.tiny import build_tiny

        model = str(build_tiny("lm", work / "tiny_lm", seed=0))
    data = write_preference_task(work / "data", 8, 8, seed=0, num_judge=args.requests)
    prompts = [json.loads(line)["problem"] for line in data["judge_sft"].read_text().splitlines()]

    results = []
    for size in [int(s) for s in args.batch_sizes.split(",")]:
        extra = ["--max-batch-size", str(size), "--max-new-tokens", "4"]
        with LocalModelServer(model, name="judge", log_dir=work, num_threads=args.threads, extra_args=extra) as srv:
            asyncio.run(ask_all(srv.openai_url, prompts[:8], args.concurrency))  # warm-up
            before = httpx.get(f"{srv.base_url}/stats").json()
            t0 = time.perf_counter()
            calls = asyncio.run(ask_all(srv.openai_url, prompts, args.concurrency))
            wall = time.perf_counter() - t0
            after = httpx.get(f"{srv.base_url}/stats").json()
        results.append(
            {
                "max_batch_size": size,
                "seconds": round(wall, 2),
                "requests_per_s": round(len(prompts) / wall, 1),
                "http_calls": calls,
                "engine_calls": after["engine_calls"] - before["engine_calls"],
                "largest_batch": after["largest_batch"],
            }
        )
    base = results[0]["seconds"]
    print(f"{len(prompts)} judge prompts, concurrency {args.concurrency}, model {model}")
    print("| --max-batch-size | seconds | requests/s | engine calls | largest batch | time vs first |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['max_batch_size']} | {r['seconds']} | {r['requests_per_s']} | {r['engine_calls']} | "
            f"{r['largest_batch']} | {r['seconds'] / base:.2f}x |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
