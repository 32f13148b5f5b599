"""Decode step time of a CPU worker while another process holds a core, per OpenMP wait policy.

    python bench/omp_wait_policy.py --model outputs/smollm2 [--threads 2] [--steps 24]

Each setting runs in a fresh process (OpenMP reads OMP_WAIT_POLICY once, at start): greedy decoding of
``--steps`` tokens after a short prompt, timed per token, first alone and then beside a busy process that
spins on one core (what a reward worker, the driver or another engine does on a 2-core machine). With the
default policy an OpenMP thread that waits at a barrier spins, so a decode step that needs both threads
waits for the descheduled one; PASSIVE threads sleep instead. Reported: median step time in ms and the
slowdown beside the busy process, as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time, statistics
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
torch.set_num_threads(int(sys.argv[2]))
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
tok = AutoTokenizer.from_pretrained(sys.argv[1])
ids = tok("The capital of France is", return_tensors="pt").input_ids
steps = int(sys.argv[3])
def decode():
    times, past, x = [], None, ids
    with torch.no_grad():
        for _ in range(steps):
            t = time.perf_counter()
            out = model(x, past_key_values=past, use_cache=True)
            past, x = out.past_key_values, out.logits[:, -1:].argmax(-1)
            times.append(time.perf_counter() - t)
    return statistics.median(times[2:]) * 1000
decode()  # warm
print(json.dumps({"ms": decode()}), flush=True)
"""


def spin(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


OMP_KNOBS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
DEFAULT_SETTINGS = ("", "OMP_WAIT_POLICY=PASSIVE", "OMP_WAIT_POLICY=ACTIVE", "GOMP_SPINCOUNT=10000")


def measure(model: str, threads: int, steps: int, setting: str, busy: bool) -> float:
    """Median decode step (ms) in a fresh process with ``setting`` ('NAME=VALUE' or '' for libgomp's default)."""
    env = {k: v for k, v in os.environ.items() if k not in OMP_KNOBS}
    env["OMP_NUM_THREADS"] = str(threads)
    if setting:
        name, _, value = setting.partition("=")
        env[name] = value
    spinner = None
    if busy:
        spinner = multiprocessing.Process(target=spin, args=(time.time() + 600,), daemon=True)
        spinner.start()
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, model, str(threads), str(steps)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        if spinner is not None:
            spinner.terminate()
            spinner.join()
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])["ms"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a Hugging Face causal LM folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2, help="runs per cell; the median is reported")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=list(DEFAULT_SETTINGS),
        help="environment settings to compare, NAME=VALUE ('' for libgomp's default)",
    )
    args = parser.parse_args()
    rows = []
    for setting in args.settings:
        # alternate alone / busy so that drift in the machine's load hits both columns alike
        alone, busy = [], []
        for _ in range(args.repeats):
            alone.append(measure(args.model, args.threads, args.steps, setting, False))
            busy.append(measure(args.model, args.threads, args.steps, setting, True))
        rows.append((setting or "(unset: libgomp default)", statistics.median(alone), statistics.median(busy)))
        print(f"{rows[-1][0]}: alone {rows[-1][1]:.0f} ms, beside a busy process {rows[-1][2]:.0f} ms", flush=True)
    print(f"\n| OpenMP setting ({args.threads} threads) | decode step alone | beside a busy process | slowdown |")
    print("|---|---|---|---|")
    for name, alone, busy in rows:
        print(f"| {name} | {alone:.0f} ms | {busy:.0f} ms | {busy / alone:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
