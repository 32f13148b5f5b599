"""Reward service benchmark: the server against a straightforward per-sample loop, in the same run.

    python bench/reward_server.py                 # generative mix + REC, 16 concurrent clients
    python bench/reward_server.py --soak          # also 50 clients x 2000 requests (100k requests)
    python bench/reward_server.py --out bench.json

Workloads
- generative mix (OmniRL's Rb+Rr+Rm): references are real English sentences (WordNet's glosses),
  each with a GRPO group of 8 paraphrased answers (synonyms, dropped and swapped words) in
  ``<think>..</think><answer>..</answer>``; reward = format + (BLEU + ROUGE-1 + METEOR) / 3.
- REC: the VLM-R1 outputs in shared/data/vlm_r1_rec_outputs (format + IoU), or synthetic boxes
  when the data is absent.

The server (``openrlhf-reward-server``, built-in recipes) is started on loopback and driven by 16
concurrent clients sending requests of ``--batch`` samples; we report samples/s and per-request p50/p99
latency. The baseline scores the same samples in one process, one sample at a time, with nltk's
sentence_bleu and meteor_score (WordNet 3.0) and rouge-score's RougeScorer (stemmer), as a reward
function file usually does. Results are printed as JSON (and a Markdown table).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from openrlhf.trainer.local_reward_server import LocalRewardServer

REPO = Path(__file__).resolve().parents[1]
WORDNET_DATA = Path("/usr/share/wordnet/data.noun")


# --------------------------------------------------------------------------- workloads


def glosses(n: int, seed: int) -> list[str]:
    out = []
    with open(WORDNET_DATA, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  ") or "|" not in line:
                continue
            gloss = line.split("|", 1)[1].split(";")[0].strip()
            if 10 <= len(gloss.split()) <= 40:
                out.append(gloss)
    random.Random(seed).shuffle(out)
    return out[:n]


def paraphrase(sentence: str, vocabulary: list[str], rng: random.Random) -> str:
    toks = sentence.split()
    for _ in range(max(1, len(toks) // 5)):
        op = rng.random()
        i = rng.randrange(len(toks))
        if op < 0.4:
            toks[i] = rng.choice(vocabulary)
        elif op < 0.7 and len(toks) > 3:
            del toks[i]
        else:
            j = rng.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
    return " ".join(toks)


def generative_samples(groups: int, group_size: int = 8, seed: int = 0) -> list[tuple[str, dict]]:
    refs = glosses(groups + 2000, seed)
    vocabulary = " ".join(refs[groups:]).split()
    rng = random.Random(seed)
    samples = []
    for ref in refs[:groups]:
        for _ in range(group_size):
            answer = paraphrase(ref, vocabulary, rng)
            query = f"<|im_start|>assistant\n<think>Let me describe it. {answer[:40]}</think><answer>{answer}</answer><|im_end|>"
            samples.append((query, {"solution": ref, "task": "generative"}))
    return samples


def rec_samples(copies: int = 4) -> list[tuple[str, dict]]:
    shared = Path(os.environ.get("SHARED_DATA_DIR") or REPO.parent / "shared" / "data") / "vlm_r1_rec_outputs"
    if not shared.is_dir():
        shared = Path("/work/shared/data/vlm_r1_rec_outputs")
    rows = []
    for file in sorted(shared.glob("*r1_600.json")) if shared.is_dir() else []:
        rows += json.loads(file.read_text())["results"]
    if not rows:  # synthetic stand-in
        rng = random.Random(0)
        for _ in range(1000):
            x, y = rng.randint(0, 500), rng.randint(0, 500)
            box = [x + rng.randint(-20, 20), y, x + 100, y + 80 + rng.randint(-20, 20)]
            rows.append(
                {"ground_truth": [x, y, x + 100, y + 80], "model_output": f"<think>r</think><answer>{box}</answer>"}
            )
    return [
        (f"<|im_start|>assistant\n{r['model_output']}<|im_end|>", {"solution": r["ground_truth"], "task": "rec"})
        for r in rows * copies
    ]


# --------------------------------------------------------------------------- baseline: the per-sample loop


def baseline_generative(samples: list[tuple[str, dict]]) -> float:
    """Seconds to score ``samples`` one at a time with nltk BLEU/METEOR and rouge-score, in this process."""
    import nltk
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from nltk.translate.meteor_score import meteor_score
    from rouge_score import rouge_scorer

    from remote_rm.wordnet import prepare_wordnet

    root = prepare_wordnet()
    if root is not None:
        nltk.data.path.insert(0, str(root))
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()  # load time is not counted
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    smooth = SmoothingFunction().method1
    started = time.perf_counter()
    for query, label in samples:
        response = query.split("<|im_start|>assistant\n")[-1].split("<|im_end|>")[0]
        fmt = float(re.fullmatch(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", response, re.S) is not None)
        match = re.search(r"<answer>(.*?)</answer>", response, re.S)
        answer = match.group(1) if match else ""
        ref = label["solution"]
        hyp_toks, ref_toks = answer.lower().split(), ref.lower().split()
        bleu = sentence_bleu([ref_toks], hyp_toks, smoothing_function=smooth)
        rouge = scorer.score(ref, answer)["rouge1"].fmeasure
        meteor = meteor_score([ref_toks], hyp_toks, wordnet=wordnet)
        _ = fmt + (bleu + rouge + meteor) / 3
    return time.perf_counter() - started


def baseline_rec(samples: list[tuple[str, dict]]) -> float:
    started = time.perf_counter()
    pattern = re.compile(r"\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\]")
    for query, label in samples:
        fmt = float(re.search(r"<think>.*?</think>\s*<answer>.*?</answer>", query, re.S) is not None)
        match = re.search(r"<answer>(.*?)</answer>", query, re.S)
        boxes = pattern.findall(match.group(1)) if match else []
        iou = 0.0
        if boxes:
            a, b = [float(v) for v in boxes[0]], label["solution"]
            inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            iou = inter / union if union > 0 else 0.0
        _ = fmt + iou
    return time.perf_counter() - started


# --------------------------------------------------------------------------- the server under load


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its child processes (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    pids = [pid] + [int(c) for c in children]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def drive(url: str, bodies: list[bytes], clients: int) -> tuple[float, list[float], int]:
    """Send every body with ``clients`` concurrent clients; (seconds, per-request latencies, errors)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:

        async def client() -> None:
            nonlocal errors
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                resp = await http.post(url, content=body, headers={"content-type": "application/json"})
                latencies.append(time.perf_counter() - started)
                errors += resp.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - started, latencies, errors


def bodies_for(samples: list[tuple[str, dict]], batch: int) -> list[bytes]:
    out = []
    for k in range(0, len(samples), batch):
        chunk = samples[k : k + batch]
        out.append(
            json.dumps(
                {"query": [q for q, _ in chunk], "prompts": [""] * len(chunk), "labels": [lab for _, lab in chunk]}
            ).encode()
        )
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(name: str, url: str, server_pid: int, sample_sets, warmup, baseline_fn, batch: int, clients: int) -> dict:
    """Both sides first score ``warmup`` (other samples from the same distribution: a long-running
    server's caches are warm, and so are nltk's own), then each set of ``sample_sets``, alternating
    baseline and server so that load from other processes hits both alike; the speedup is the median
    of the per-set ratios."""
    baseline_fn(warmup)
    asyncio.run(drive(url, bodies_for(warmup, batch), clients))
    server_sps, baseline_sps, latencies, errors = [], [], [], 0
    server_cpu, baseline_cpu = 0.0, 0.0
    repeats = len(sample_sets)
    for samples in sample_sets:
        cpu0 = time.process_time()
        baseline_sps.append(len(samples) / baseline_fn(samples))
        baseline_cpu += time.process_time() - cpu0
        cpu0 = process_tree_cpu(server_pid)
        elapsed, lat, err = asyncio.run(drive(url, bodies_for(samples, batch), clients))
        server_cpu += process_tree_cpu(server_pid) - cpu0
        server_sps.append(len(samples) / elapsed)
        latencies += lat
        errors += err
    ratios = [s / b for s, b in zip(server_sps, baseline_sps, strict=True)]
    return {
        "workload": name,
        "samples": len(sample_sets[0]),
        "batch": batch,
        "clients": clients,
        "repeats": repeats,
        "server_samples_per_s": round(statistics.median(server_sps), 1),
        "baseline_samples_per_s": round(statistics.median(baseline_sps), 1),
        "speedup": round(statistics.median(ratios), 2),
        "speedups": [round(r, 2) for r in ratios],
        "p50_latency_s": round(statistics.median(latencies), 4),
        "p99_latency_s": round(percentile(latencies, 0.99), 4),
        "errors": errors,
        # CPU per sample does not depend on what else the machine runs: the server's (main process and
        # workers, not the load-generating client) against the baseline's.
        "server_cpu_ms_per_sample": round(server_cpu / (repeats * len(sample_sets[0])) * 1e3, 4),
        "baseline_cpu_ms_per_sample": round(baseline_cpu / (repeats * len(sample_sets[0])) * 1e3, 4),
    }


def soak(base: str, clients: int = 50, per_client: int = 2000) -> dict:
    """50 clients x 2000 requests, each answer checked against its own request."""
    sys.path.insert(0, str(REPO / "tests" / "remote_rm"))
    from test_rm_concurrency import run_clients

    started = time.perf_counter()
    problems = asyncio.run(run_clients(f"{base}/get_reward", clients, per_client))
    elapsed = time.perf_counter() - started
    return {
        "workload": "soak",
        "requests": clients * per_client,
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests_per_s": round(clients * per_client / elapsed, 1),
        "wrong_or_failed": len(problems),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", type=int, default=250, help="generative prompts (x8 answers each)")
    p.add_argument("--batch", type=int, default=64, help="samples per request (the trainer's reward.batch_size)")
    p.add_argument("--repeats", type=int, default=3, help="alternating baseline/server measurements")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--workers", type=int, default=None, help="server scoring workers (default: the server's)")
    p.add_argument("--soak", action="store_true", help="also run 50 clients x 2000 requests")
    p.add_argument("--soak-requests", type=int, default=2000, help="requests per soak client")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    # fresh answers and references for every repeat: no text is scored twice
    gen_sets = [generative_samples(args.groups, seed=10 + k) for k in range(args.repeats)]
    # a long-running server has seen much of the vocabulary: warm both sides on 3 other sets
    gen_warmup = [s for seed in (1, 2, 3) for s in generative_samples(args.groups, seed=seed)]
    rec = rec_samples()
    server = LocalRewardServer(workers=args.workers, startup_timeout=300, extra_args=["--log-level", "warning"]).start()
    try:
        url = server.url
        results = {
            "cpu_count": os.cpu_count(),
            "load_average_1min_at_start": round(os.getloadavg()[0], 2),
            "runs": [
                measure(
                    "generative mix (BLEU+ROUGE-1+METEOR, format)",
                    url,
                    server.pid,
                    gen_sets,
                    gen_warmup,
                    baseline_generative,
                    args.batch,
                    args.clients,
                ),
                measure(
                    "REC (IoU, format)",
                    url,
                    server.pid,
                    [rec] * args.repeats,
                    rec[: len(rec) // 4],
                    baseline_rec,
                    args.batch,
                    args.clients,
                ),
            ],
        }
        if args.soak:
            results["runs"].append(soak(server.base_url, per_client=args.soak_requests))
    finally:
        server.stop(timeout=30)
    print(json.dumps(results, indent=2))
    print(
        "\n| workload | samples | server samples/s | baseline samples/s | speedup | p50 s | p99 s | CPU ms/sample server / baseline |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for run in results["runs"]:
        if "speedup" in run:
            print(
                f"| {run['workload']} | {run['samples']} | {run['server_samples_per_s']} | {run['baseline_samples_per_s']} "
                f"| {run['speedup']}x | {run['p50_latency_s']} | {run['p99_latency_s']} "
                f"| {run['server_cpu_ms_per_sample']} / {run['baseline_cpu_ms_per_sample']} |"
            )
    print(f"(load average over the last minute: {os.getloadavg()[0]:.2f}; 2 cores shared with everything else)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
