"""What a lost part costs a run, and what a checkpoint costs a step, on a simulated multi-node cluster.

    python bench/fault_recovery.py [--steps 12] [--fault-after 5] [--out bench/results/fault_recovery.json]

The cluster: Ray's own test cluster on this machine (openrlhf/utils/sim_cluster.py), 4 nodes of 1 CPU each.
The run: ``openrlhf-train`` on the tiny LM and the arithmetic task, 2 policy ranks (ZeRO-2) and 1 HF engine,
each on a node of its own, 4 prompts x 4 samples, 16 new tokens, a checkpoint every 2 steps,
``train.max_restarts`` 3.

faults   one run per kind of fault, the fault injected after step ``--fault-after`` is logged: the engine's
         process killed, policy rank 1's process killed, the node of policy rank 0 removed (a fresh node joins).
         From the run's summary: the time from the fault to the next trained step (``seconds_lost``: noticing
         it, tearing down, placing and starting the workers again, reloading the checkpoint, redoing the steps
         after it) and the steps redone; the work lost is steps redone x the median step.
ckpt     the same run without faults, a checkpoint after every step: none, written in the foreground, and
         ``ckpt.async_save`` (the workers write while the next step's generation runs). The median of step +
         checkpoint wait (a write in the background slows the next step instead), and of
         ``timing/checkpoint`` (what the loop waited for the checkpoint).

A markdown table to stdout, progress to stderr, everything to --out (JSON).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORK = Path.home() / ".cache" / "openrlhf-r1" / "bench" / "fault_recovery"
REWARD_FUNC = """
def reward_func(queries, prompts, labels, **kwargs):
    return [1.0 if str(label) in query[len(prompt):] else 0.0 for query, prompt, label in zip(queries, prompts, labels)]
"""
FAULTS = {  # name: (what it does, how)
    "engine killed": ("kill", "ray::HFRolloutEngine", 0),
    "policy rank killed": ("kill", "ray::PolicyWorker", 1),
    "node removed": ("remove", "ray::PolicyWorker", 0),
}
CKPT_VARIANTS = {
    "no checkpoint": ["--ckpt.interval", "0"],
    "every step, foreground": ["--ckpt.interval", "1"],
    "every step, async_save": ["--ckpt.interval", "1", "--ckpt.async_save", "true"],
}


def progress(message: str) -> None:
    print(f"[fault_recovery {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def prepare(work: Path) -> dict[str, Path]:
    from openrlhf.data.synthetic import write_arithmetic_task
    from openrlhf.models.tiny import build_tiny_lm

    work.mkdir(parents=True, exist_ok=True)
    model = work / "tiny_lm"
    if not (model / "config.json").is_file():
        build_tiny_lm(model)
    paths = write_arithmetic_task(work / "task", 64, 16, 0)
    reward = work / "reward.py"
    reward.write_text(REWARD_FUNC)
    return {"model": model, "train": paths["train"], "reward": reward}


def run_args(inputs: dict[str, Path], out: Path, steps: int, *extra: str) -> list[str]:
    return [
        "--actor.model_name_or_path", str(inputs["model"]), "--data.train_paths", f"[{inputs['train']}]",
        "--reward.reward_func", str(inputs["reward"]), "--train.output_dir", str(out),
        "--train.max_steps", str(steps), "--train.rollout_batch_size", "4", "--rollout.n_samples_per_prompt", "4",
        "--rollout.max_new_tokens", "16", "--actor.num_gpus_per_node", "2", "--ds.zero_stage", "2",
        "--rollout.backend", "hf", "--train.max_restarts", "3", "--logger.progress_bar", "false", *extra,
    ]  # fmt: skip


def logged_steps(out: Path) -> int:
    path = out / "metrics.jsonl"
    if not path.is_file():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.endswith("}")]
    return json.loads(lines[-1])["step"] if lines else 0


def run(cluster, args: list[str], log: Path, fault=None, after: int = 0) -> dict:
    """One run; ``fault`` (kind, title, index) is injected once step ``after`` is logged."""
    out = Path(args[args.index("--train.output_dir") + 1])
    shutil.rmtree(out, ignore_errors=True)  # a run of an earlier bench must not count as this one's steps
    command = [sys.executable, "-m", "openrlhf.cli.train", *args]
    t0 = time.perf_counter()
    with log.open("w") as stream:
        proc = subprocess.Popen(command, env=cluster.env(OMP_NUM_THREADS="1"), stdout=stream, stderr=subprocess.STDOUT)
        if fault is not None:
            while proc.poll() is None and logged_steps(out) < after:
                time.sleep(0.2)
            kind, title, index = fault
            if kind == "kill":
                cluster.kill(title, index)
            else:
                cluster.remove_node_of(title)
                cluster.add_node()
        code = proc.wait()
    if code:
        raise SystemExit(f"exit {code}: see {log}\n" + "\n".join(log.read_text().splitlines()[-20:]))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "summary": json.loads((out / "summary.json").read_text()),
        "rows": rows,
        "wall_seconds": time.perf_counter() - t0,
    }


def median_step(rows: list[dict], skip: int = 2) -> float:
    return statistics.median(r["timing/step"] for r in rows[skip:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--fault-after", type=int, default=5)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fault_recovery.json")
    args = parser.parse_args()

    from openrlhf.utils.sim_cluster import SimulatedCluster

    inputs = prepare(args.work)
    results: dict = {"faults": {}, "checkpoint": {}}
    with SimulatedCluster(nodes=4, cpus_per_node=1, job_server=False) as cluster:
        for name, fault in FAULTS.items():
            progress(f"fault: {name} after step {args.fault_after}")
            out = args.work / name.replace(" ", "_")
            ckpt = ("--ckpt.interval", "2")
            got = run(
                cluster, run_args(inputs, out, args.steps, *ckpt), out.with_suffix(".log"), fault, args.fault_after
            )
            (record,) = got["summary"]["faults"]
            step = median_step(got["rows"])
            results["faults"][name] = {
                **record,
                "median_step_seconds": step,
                "work_lost_seconds": record["steps_redone"] * step,
                "wall_seconds": got["wall_seconds"],
            }
        for name, flags in CKPT_VARIANTS.items():
            progress(f"checkpoint: {name}")
            out = args.work / ("ckpt_" + name.replace(" ", "_").replace(",", ""))
            got = run(cluster, run_args(inputs, out, args.steps, *flags), out.with_suffix(".log"))
            waits = [r["timing/checkpoint"] for r in got["rows"][2:] if "timing/checkpoint" in r]
            per_step = [r["timing/step"] + r.get("timing/checkpoint", 0.0) for r in got["rows"][2:]]
            results["checkpoint"][name] = {
                "median_step_seconds": statistics.median(per_step),
                "median_checkpoint_wait_seconds": statistics.median(waits) if waits else 0.0,
                "wall_seconds": got["wall_seconds"],
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print("| fault | noticed at step | fault -> next trained step | steps redone | work lost | median step |")
    print("|---|---|---|---|---|---|")
    for name, r in results["faults"].items():
        print(
            f"| {name} | {r['step']} | {r['seconds_lost']:.1f} s | {r['steps_redone']} | "
            f"{r['work_lost_seconds']:.1f} s | {r['median_step_seconds']:.2f} s |"
        )
    base = results["checkpoint"]["no checkpoint"]["median_step_seconds"]
    print("\n| checkpoint | median step | vs none | loop waited for the checkpoint (median) |")
    print("|---|---|---|---|")
    for name, r in results["checkpoint"].items():
        print(
            f"| {name} | {r['median_step_seconds']:.2f} s | {r['median_step_seconds'] / base:.2f}x | "
            f"{r['median_checkpoint_wait_seconds']:.2f} s |"
        )


if __name__ == "__main__":
    main()
