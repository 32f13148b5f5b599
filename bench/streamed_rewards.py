"""Rewards scored per finished group while the rest generate, against generating everything and then scoring.

    python bench/streamed_rewards.py [--repeats 3] [--judge-latency 0.5] [--out bench/results/streamed_rewards.json]

One step's first half on the text demo's shape (16 prompts x 8 samples, 96 new tokens, HF engine with
``generate_batch_size`` 32 rows, so groups finish in 4 chunks), in this process as the in-driver layout runs it,
with the demo's SFT model when bench/async_vs_sync.py left one (else the tiny LM on the arithmetic task). Two
ways, alternated, same seed and prompts, so both generate the same responses:

- one after the other: ``generate`` then one reward call for the batch (the code before streaming);
- streamed: ``generate_and_score`` (openrlhf/trainer/streamed_rollout.py).

Reward sources: the real reward service on loopback (the demo's math recipe, milliseconds per call) and a
``reward_func`` file emulating a slow LLM judge: it sleeps ``--judge-latency`` seconds per call plus 10 ms per
sample (a remote judge's round trip; no CPU used), then scores like the demo's recipe. Reported: median time of
the first half (generation + the reward time the step waits for) per way, the ratio, and the scoring time hidden
behind generation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = Path.home() / ".cache" / "openrlhf-r1" / "bench" / "async" / "demo"

JUDGE = """
import os, time

def reward_func(queries, prompts, labels, **kw):
    time.sleep(float(os.environ["JUDGE_LATENCY"]) + 0.01 * len(queries))
    rewards = []
    for query, prompt, label in zip(queries, prompts, labels):
        response = query[len(prompt):]
        answer = response.split("<answer>")[-1].split("</answer>")[0].strip()
        rewards.append(float(answer == str(label).strip()) + 0.5 * float("</answer>" in response))
    return {"rewards": rewards, "scores": rewards}
"""


def progress(message: str) -> None:
    print(f"[streamed_rewards {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def model_and_prompts(work: Path) -> tuple[Path, Path, str]:
    if (DEMO / "sft_model" / "model.safetensors").is_file():
        return DEMO / "sft_model", DEMO / "data" / "train.json", "the text demo's SFT model (bench/async_vs_sync.py)"
    from openrlhf.data.synthetic import write_arithmetic_task
    from openrlhf.models.tiny import build_tiny_lm

    model = build_tiny_lm(work / "tiny_lm")
    paths = write_arithmetic_task(work / "task", 64, 0, 0)
    return model, paths["train"], "the tiny LM on the arithmetic task (no SFT model from bench/async_vs_sync.py)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--judge-latency", type=float, default=0.5)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "streamed_rewards.json"))
    args = parser.parse_args()
    os.environ["JUDGE_LATENCY"] = str(args.judge_latency)

    import torch

    from openrlhf.config import RewardConfig
    from openrlhf.config_loading import build_config
    from openrlhf.data.loader import load_samples
    from openrlhf.rollout.hf_engine import HFRolloutEngine
    from openrlhf.rollout.prompt_encoder import PromptEncoder
    from openrlhf.trainer.experience_maker import sampling_params, score_groups
    from openrlhf.trainer.local_reward_server import open_reward_source
    from openrlhf.trainer.reward_client import FileRewardFunction
    from openrlhf.trainer.streamed_rollout import generate_and_score
    from openrlhf.utils.actor_calls import InDriverHandle

    sys.path.insert(0, str(REPO / "tests"))
    from openrlhf_helpers import generate  # the sequential way: every output gathered, then scored

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="streamed_rewards_"))
    model, prompts_path, model_note = model_and_prompts(work)
    cfg = build_config(
        {
            "actor": {"model_name_or_path": str(model)},
            "data": {"train_paths": [str(prompts_path)], "prompt_max_len": 64},
            "rollout": {"n_samples_per_prompt": 8, "max_new_tokens": 96, "generate_batch_size": 32},
            "train": {"output_dir": str(work / "out")},
        }
    )
    encoder = PromptEncoder(cfg)
    prompts = [encoder.encode(s) for s in load_samples([str(prompts_path)], cfg.data).samples[:16]]
    engine = InDriverHandle(HFRolloutEngine(str(model), generate_batch_size=32, num_threads=2, seed=0))
    judge_file = work / "judge.py"
    judge_file.write_text(JUDGE)
    progress(f"{model_note}; 16 prompts x 8 samples, {args.repeats} repeats per way")

    def sequential(source, params):
        t = time.perf_counter()
        outputs = generate([engine], prompts, params)
        t_gen = time.perf_counter() - t
        groups = [outputs[k * 8 : (k + 1) * 8] for k in range(len(prompts))]
        score_groups(source, encoder, prompts, groups)
        return {
            "first_half": time.perf_counter() - t,
            "generation": t_gen,
            "reward_busy": time.perf_counter() - t - t_gen,
        }

    def streamed(source, params):
        t = time.perf_counter()
        scored = generate_and_score([engine], prompts, params, source, encoder)
        w = scored.generation_window
        return {
            "first_half": time.perf_counter() - t,
            "generation": w[1] - w[0],
            "reward_busy": scored.reward_busy,
            "reward_wait": scored.reward_wait,
            "pieces": len(scored.reward_windows),
        }

    results = {"model": model_note, "judge_latency_s": args.judge_latency, "sources": {}}
    service_cfg = RewardConfig(launch_local_server=True)
    with open_reward_source(service_cfg, work) as service:
        sources = {
            "reward service (math recipe)": service,
            "reward_func, emulated judge": FileRewardFunction(judge_file),
        }
        for name, source in sources.items():
            runs: dict[str, list[dict]] = {"sequential": [], "streamed": []}
            streamed(source, sampling_params(cfg, seed=0))  # warm-up (first generate, server connections)
            for repeat in range(args.repeats):
                params = sampling_params(cfg, seed=1 + repeat)
                for way, fn in (("sequential", sequential), ("streamed", streamed)):
                    runs[way].append(fn(source, params))
                    progress(f"{name}, repeat {repeat + 1}, {way}: {runs[way][-1]['first_half']:.2f} s")
            med = {way: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for way, rs in runs.items()}
            med["ratio_streamed_over_sequential"] = med["streamed"]["first_half"] / med["sequential"]["first_half"]
            results["sources"][name] = {"median": med, "runs": runs}
    print(json.dumps(results, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(
        "\n| reward source | one after the other (s) | streamed (s) | ratio | scoring time | waited for after generation |"
    )
    print("|---|---|---|---|---|---|")
    for name, entry in results["sources"].items():
        med = entry["median"]
        print(
            f"| {name} | {med['sequential']['first_half']:.2f} | {med['streamed']['first_half']:.2f} | "
            f"{med['ratio_streamed_over_sequential']:.2f}x | {med['streamed']['reward_busy']:.2f} | "
            f"{med['streamed']['reward_wait']:.2f} |"
        )


if __name__ == "__main__":
    main()
