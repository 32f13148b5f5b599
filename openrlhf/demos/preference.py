"""The R1-Reward demo (``demo.task: preference``, configs/demo_reward_model.yaml): train the tiny VLM as a
generative multimodal reward model and evaluate it before and after RL.

1. Data (:mod:`openrlhf.data.synthetic_preference`): shapes images, a question, two answers (one true), the
   preferred position in R1-Reward's row format; the SFT targets come from a teacher that takes Response 1
   without looking ``demo.teacher_bias`` of the time (a position bias).
2. The consistency judge: a tiny text LM, SFT-trained on the reward service's own judge prompt, served by
   ``openrlhf-serve`` on loopback (:class:`openrlhf.serve.local.LocalModelServer`); its agreement with the
   known verdicts of held-out judge examples is measured through the same client the reward service uses.
3. SFT warm start of the tiny VLM on the teacher's judgements.
4. Held-out pairwise evaluation (:func:`openrlhf.eval.reward_model.evaluate_reward_model`): both answer orders,
   ``demo.voting`` samples each: accuracy, Voting@K, position consistency, invalid rate.
5. RL with the config's algorithm (StableReinforce) and R1-Reward's preference recipe,
   0.5 * format + accuracy * (1 + 0.5 * consistency), the consistency asked of the served judge.
6. The held-out evaluation again; summary.json gets both and the gains (``pairwise_*_before/after/gain``).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import yaml

from openrlhf.config import Config

RECIPES = "reward_recipes_r1_reward.yaml"  # R1-Reward's preference recipe (configs/), its judge replaced here
JUDGE_NAME = "consistency-judge"
PAIRWISE_KEYS = ("accuracy", "accuracy_voting", "position_consistency", "position_consistency_voting", "invalid_rate")


def judge_server_config(judge_url: str, out_path: Path) -> Path:
    """configs/reward_recipes_r1_reward.yaml with its judge pointed at the served judge; written to ``out_path``."""
    from openrlhf.config_loading import CONFIG_DIR

    recipes = yaml.safe_load((CONFIG_DIR / RECIPES).read_text(encoding="utf-8"))
    recipes["judge"].update(base_url=judge_url, model=JUDGE_NAME, concurrency=16, timeout_s=30, max_tokens=4)
    out_path.write_text(yaml.safe_dump(recipes, sort_keys=False), encoding="utf-8")
    return out_path


def judge_agreement(judge_url: str, rows_path: Path) -> dict[str, float]:
    """The served judge's verdicts on held-out judge examples against their known verdicts, asked through
    the reward service's own client (:class:`remote_rm.judge.JudgeClient`)."""
    from remote_rm.judge import JudgeClient, parse_verdict
    from remote_rm.settings import JudgeEndpoint

    rows = [json.loads(line) for line in rows_path.read_text(encoding="utf-8").splitlines() if line.strip()]

    async def ask_all() -> list:
        client = JudgeClient(JudgeEndpoint(base_url=judge_url, model=JUDGE_NAME, max_tokens=4, concurrency=16))
        try:
            return await asyncio.gather(*(client.ask(row["problem"], parse_verdict, "0 or 1") for row in rows))
        finally:
            await client.close()

    verdicts = asyncio.run(ask_all())
    answered = [(v.verdict, row["solution"] == "1") for v, row in zip(verdicts, rows, strict=True) if v.ok]
    return {
        "judge_heldout_examples": len(rows),
        "judge_agreement": sum(got == want for got, want in answered) / len(rows),
        "judge_failures_heldout": len(rows) - len(answered),
    }


def train_judge(cfg: Config, work: Path, data: dict[str, Path]) -> dict[str, Any]:
    """Build the tiny LM and SFT it on ``judge_sft.jsonl`` (prompt = judge prompt, target = the verdict digit)."""
    from openrlhf.demos.pipeline import sft_warm_start
    from openrlhf.models.tiny import build_tiny

    base = work / "tiny_judge_lm"
    if not (base / "config.json").is_file():
        build_tiny("lm", base, seed=cfg.train.seed + 1)
    judge_cfg = cfg.model_copy(deep=True)
    judge_cfg.data.prompt_max_len = 512  # the judge prompt is ~410 tiny-tokenizer tokens
    judge_cfg.data.task_suffix = ""
    judge_cfg.sft.epochs = cfg.demo.judge_epochs
    judge_cfg.sft.max_len = 8
    summary = sft_warm_start(judge_cfg, base, data["judge_sft"], work / "judge_model", " of the consistency judge")
    return {f"judge_{k}": v for k, v in summary.items()}


def pairwise_eval(cfg: Config, model: str, heldout: Path, out: Path) -> dict[str, Any]:
    """Held-out pairwise figures of ``model`` (both orders, Voting@demo.voting)."""
    from openrlhf.eval.reward_model import evaluate_reward_model

    eval_cfg = cfg.model_copy(deep=True)
    eval_cfg.actor.model_name_or_path = model
    eval_cfg.data.eval_paths = [str(heldout)]  # eval.temperature unset: 1.0 for K > 1, greedy for K = 1
    return evaluate_reward_model(eval_cfg, voting=cfg.demo.voting, order="both", out=str(out))


def run_preference_demo(cfg: Config, work: Path, model_dir: Path, data: dict[str, Path]) -> dict[str, Any]:
    """Steps 2-6 of the module docstring (Ray is up); returns the demo's summary."""
    from openrlhf.demos.pipeline import sft_warm_start
    from openrlhf.serve.local import LocalModelServer
    from openrlhf.trainer.driver import RLTrainer

    summary: dict[str, Any] = train_judge(cfg, work, data)
    start_model = str(model_dir)
    if cfg.demo.sft:
        sft_summary = sft_warm_start(cfg, model_dir, data["sft"], work / "sft_model", " of the reward model")
        summary.update(sft_summary)
        start_model = sft_summary["sft_model"]

    reports = {"before": pairwise_eval(cfg, start_model, data["heldout"], work / "eval_before.json")}
    # Both cores for the judge while the reward phase asks it (the trainer's workers wait then); its OpenMP
    # threads sleep rather than spin between requests, while the workers train (docs/benchmarks.md, OpenMP).
    omp = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    judge_server = LocalModelServer(work / "judge_model", name=JUDGE_NAME, log_dir=work, num_threads=2, env=omp)
    with judge_server as judge:
        summary.update(judge_agreement(judge.openai_url, data["judge_heldout"]))
        rl_cfg = cfg.model_copy(deep=True)
        rl_cfg.demo.enable = False
        rl_cfg.actor.model_name_or_path = start_model
        rl_cfg.data.train_paths = [str(data["train"])]
        rl_cfg.data.eval_paths = []  # held-out pairs are judged by the reward-model evaluation, both orders
        rl_cfg.reward.launch_local_server = True
        rl_cfg.reward.server_config = str(judge_server_config(judge.openai_url, work / "reward_server.yaml"))
        print(f"[demo] {cfg.algo.name} from {start_model}; consistency judge served at {judge.openai_url}")
        trainer = RLTrainer(rl_cfg, print_summary=False)
        summary.update(trainer.fit())
    reports["after"] = pairwise_eval(cfg, summary["final_model"], data["heldout"], work / "eval_after.json")

    for key in PAIRWISE_KEYS:
        before, after = reports["before"].get(key), reports["after"].get(key)
        summary[f"pairwise_{key}_before"], summary[f"pairwise_{key}_after"] = before, after
        if before is not None and after is not None:
            summary[f"pairwise_{key}_gain"] = after - before
    summary["pairwise_voting_k"] = cfg.demo.voting
    summary["pairwise_heldout_pairs"] = reports["after"].get("pairs")
    history = trainer.history
    for name in ("judge_calls", "judge_failures", "judge_skipped"):
        summary[f"rl_{name}"] = sum(h.get(f"reward_log/{name}", 0.0) for h in history)
    if history:
        summary["rl_consistency_first"] = history[0].get("reward/consistency")
        summary["rl_consistency_last"] = history[-1].get("reward/consistency")
    return summary
