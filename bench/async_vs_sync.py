"""Synchronous against asynchronous GRPO (train.async_enable) on the embedded text demo, at the same samples.

    python bench/async_vs_sync.py [--work DIR] [--max-staleness 1] [--out bench/results/async_vs_sync.json]

1. The demo as shipped (`openrlhf-train`: tiny LM, SFT warm start, 30 GRPO steps, synchronous).
2. The same GRPO from the same SFT model, prompts, held-out set and config, with `--train.async_enable`.

Both runs' engines are Ray actors of their own (the demo's layout: one HF engine, one policy rank). Reported per
mode: the median step time after 2 warm-up steps, generated tokens per second of wall time, the phase medians,
the held-out accuracy before/after and its gain, and in async mode the largest `async/staleness` and the mean
`async/overlap`. From the synchronous phase times, a projection for a cluster where engines and trainers hold
their own GPUs (no shared cores): a synchronous step costs generation + reward + train + weight sync, an
asynchronous one max(generation + reward, train + weight sync). A picture of each run's per-step timeline
(timeline.jsonl: each phase's start and end on each role) goes to --plot. On a 2-core machine both roles share
the cores, so the measured wall-time gain is bounded by what the cores can overlap; the projection is what a
cluster would see.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORK = Path.home() / ".cache" / "openrlhf-r1" / "bench" / "async"
WARMUP = 2
PHASES = ("generation", "reward", "logprobs", "train", "weight_sync")


def progress(message: str) -> None:
    print(f"[async_vs_sync {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def train_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "openrlhf.cli.train", *flags, "--logger.progress_bar", "false"]


def run(cmd: list[str], log: Path) -> float:
    t = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    if code:
        tail = log.read_text().splitlines()[-30:]
        raise SystemExit(f"exit {code}: {' '.join(cmd)}\n" + "\n".join(tail))
    return time.perf_counter() - t


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows[WARMUP:] if key in r]
    return statistics.median(values) if values else None


def summarize(out_dir: Path, wall: float) -> dict:
    rows = read_jsonl(out_dir / "metrics.jsonl")
    summary = json.loads((out_dir / "summary.json").read_text())
    result = {
        "steps": len(rows),
        "median_step_seconds": _median(rows, "timing/step"),
        "tokens_per_s": _median(rows, "throughput/tokens_per_s"),
        "phases_median_seconds": {p: _median(rows, f"timing/{p}") for p in PHASES},
        "heldout_before": summary.get("heldout_accuracy_before"),
        "heldout_after": summary.get("heldout_accuracy_after"),
        "wall_seconds": wall,
    }
    if result["heldout_before"] is not None and result["heldout_after"] is not None:
        result["heldout_gain"] = result["heldout_after"] - result["heldout_before"]
    if "async/staleness" in rows[-1]:
        result["max_staleness_seen"] = max(r["async/staleness"] for r in rows)
        result["mean_overlap"] = statistics.mean(r["async/overlap"] for r in rows[1:])
        result["median_wait_for_rollout"] = _median(rows, "timing/wait_for_rollout")
    return result


def projection(sync: dict) -> dict:
    """Step time with engines and trainers on devices of their own, from the synchronous phase medians."""
    p = {k: v or 0.0 for k, v in sync["phases_median_seconds"].items()}
    produce = p["generation"] + p["reward"]
    consume = p["logprobs"] + p["train"] + p["weight_sync"]
    return {
        "sync_step": produce + consume,
        "async_step": max(produce, consume),
        "speedup": (produce + consume) / max(produce, consume),
    }


def plot_timelines(runs: dict[str, Path], path: Path, steps: tuple[int, int] = (3, 8)) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"generation": "tab:blue", "reward": "tab:orange", "train": "tab:green", "weight_sync": "tab:red"}
    lanes = {"engines": 2, "driver": 1, "policy": 0}
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 2.2 * len(runs)), sharex=False)
    for ax, (name, out_dir) in zip(axes, runs.items(), strict=True):
        events = [e for e in read_jsonl(out_dir / "timeline.jsonl") if steps[0] <= e["step"] <= steps[1]]
        t0 = min(e["start"] for e in events)
        for e in events:
            ax.barh(lanes[e["role"]], e["end"] - e["start"], left=e["start"] - t0, color=colors[e["phase"]],
                    edgecolor="black", linewidth=0.4)  # fmt: skip
            if e["phase"] in ("generation", "train"):
                ax.text((e["start"] + e["end"]) / 2 - t0, lanes[e["role"]], str(e["step"]), ha="center",
                        va="center", fontsize=7, color="white")  # fmt: skip
        ax.set_yticks(list(lanes.values()), list(lanes))
        ax.set_title(f"{name}: steps {steps[0]}-{steps[1]} (bar label: the step the batch trains)", fontsize=9)
        ax.set_xlabel("seconds")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    fig.legend(handles, list(colors), loc="upper right", fontsize=8, ncol=4)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(DEFAULT_WORK))
    parser.add_argument("--max-staleness", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "async_vs_sync.json"))
    parser.add_argument("--plot", default=str(REPO / "docs" / "async_timeline.png"))
    args = parser.parse_args(argv)
    work = Path(args.work).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    demo, sync_out, async_out = work / "demo", work / "sync", work / "async"

    progress("the demo as shipped (SFT, then synchronous GRPO)")
    sync_cmd = train_command("--demo.work_dir", str(demo), "--train.output_dir", str(sync_out))
    sync_wall = run(sync_cmd, work / "sync.log")
    data = demo / "data"
    train_file = next(p for p in data.iterdir() if p.name.startswith("train"))
    heldout_file = next(p for p in data.iterdir() if p.name.startswith("heldout"))
    progress(f"asynchronous GRPO from the same SFT model (max_staleness {args.max_staleness})")
    async_cmd = train_command(
        *("--config", str(REPO / "configs" / "demo_text.yaml"), "--demo.enable", "false"),
        *("--actor.model_name_or_path", str(demo / "sft_model")),
        *("--data.train_paths", f"[{train_file}]", "--data.eval_paths", f"[{heldout_file}]"),
        *("--train.output_dir", str(async_out), "--train.async_enable", "true"),
        *("--train.max_staleness", str(args.max_staleness)),
    )
    async_wall = run(async_cmd, work / "async.log")

    results = {"sync": summarize(sync_out, sync_wall), "async": summarize(async_out, async_wall)}
    results["projection_own_gpus"] = projection(results["sync"])
    results["commands"] = {"sync": sync_cmd, "async": async_cmd}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    plot_timelines({"synchronous": sync_out, f"asynchronous (K={args.max_staleness})": async_out}, Path(args.plot))

    print(
        "| mode | s/step (median) | tokens/s | generation | train | weight sync | held-out before -> after (gain) | staleness max | overlap mean |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in ("sync", "async"):
        r = results[mode]
        ph = r["phases_median_seconds"]
        print(
            f"| {mode} | {r['median_step_seconds']:.2f} | {r['tokens_per_s']:.0f} | {ph['generation']:.2f} | "
            f"{(ph['train'] or 0) + (ph['logprobs'] or 0):.2f} | {ph['weight_sync']:.2f} | {r['heldout_before']:.3f} -> "
            f"{r['heldout_after']:.3f} ({r.get('heldout_gain', float('nan')):+.3f}) | "
            f"{r.get('max_staleness_seen', 0):.0f} | {r.get('mean_overlap', 0):.2f} |"
        )
    p = results["projection_own_gpus"]
    print(f"\nProjection, engines and trainers on their own GPUs: sync {p['sync_step']:.2f} s/step, async "
          f"{p['async_step']:.2f} s/step ({p['speedup']:.2f}x).")  # fmt: skip
    print(f"Timeline picture: {args.plot}; JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
