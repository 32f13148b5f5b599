"""The embedded default: build a tiny LM, SFT-warm it on a generated task, then GRPO, with held-out accuracy
before and after. What `openrlhf-train` runs with no --config (configs/demo_text.yaml).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from openrlhf.config import Config


def run_demo(cfg: Config) -> dict[str, Any]:
    import ray

    from openrlhf.data.synthetic import write_arithmetic_task
    from openrlhf.models.tiny import build_tiny_lm
    from openrlhf.trainer.driver import RLTrainer
    from openrlhf.trainer.metrics import write_summary
    from openrlhf.trainer.ray_setup import init_ray
    from openrlhf.trainer.sft import run_sft

    if cfg.demo.task != "arithmetic":
        raise ValueError(f"demo.task={cfg.demo.task!r}: this demo runs the text task 'arithmetic'")
    t0 = time.perf_counter()
    work = Path(cfg.demo.work_dir)
    model_dir = work / "tiny_lm"
    if not (model_dir / "config.json").is_file():
        print(f"[demo] building the tiny LM in {model_dir}")
        build_tiny_lm(model_dir, seed=cfg.train.seed)
    data = write_arithmetic_task(
        work / "data",
        cfg.demo.num_train,
        cfg.demo.num_heldout,
        seed=cfg.train.seed,
        difficulty=cfg.demo.difficulty,
        full_reasoning_prob=cfg.demo.full_reasoning_prob,
    )
    started = init_ray(num_cpus=8)
    try:
        sft_cfg = cfg.model_copy(deep=True)
        sft_cfg.actor.model_name_or_path = str(model_dir)
        sft_cfg.data.train_paths = [str(data["sft"])]
        sft_cfg.sft.output_dir = str(work / "sft_model")
        print(f"[demo] SFT warm start on {data['sft']}")
        sft_summary = run_sft(sft_cfg)

        rl_cfg = cfg.model_copy(deep=True)
        rl_cfg.demo.enable = False
        rl_cfg.actor.model_name_or_path = sft_summary["sft_model"]
        rl_cfg.data.train_paths = [str(data["train"])]
        rl_cfg.data.eval_paths = [str(data["heldout"])]
        print("[demo] GRPO from the warm start, reward server on loopback")
        summary = RLTrainer(rl_cfg).fit()
    finally:
        if started:
            ray.shutdown()
    summary.update(sft_summary)
    summary["demo_seconds"] = time.perf_counter() - t0
    before, after = summary.get("heldout_accuracy_before"), summary.get("heldout_accuracy_after")
    if before is not None and after is not None:
        summary["heldout_accuracy_gain"] = after - before
    write_summary(cfg.train.output_dir, summary)
    return summary
