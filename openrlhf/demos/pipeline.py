"""The embedded default: build a tiny LM, SFT-warm it on a generated task, then GRPO, with held-out accuracy
before and after. What `openrlhf-train` runs with no --config (configs/demo_text.yaml).

``demo.model: smollm2-135m-instruct`` (configs/demo_smollm2.yaml) takes a real pretrained model instead, fetched
and converted once (openrlhf.models.gguf), usually without the SFT warm start (``demo.sft: false``).

``demo.task: shapes`` (configs/demo_vlm.yaml) runs the same pipeline on the tiny Qwen2.5-VL and the generated
shapes images, and adds per-task held-out accuracy and the box task's mean IoU before and after GRPO.

``demo.task: preference`` (configs/demo_reward_model.yaml) trains the tiny VLM as a generative reward model,
R1-Reward's use case (:mod:`openrlhf.demos.preference`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from openrlhf.config import Config


def run_demo(cfg: Config) -> dict[str, Any]:
    import ray

    from openrlhf.data.synthetic import write_demo_task
    from openrlhf.trainer.driver import RLTrainer
    from openrlhf.trainer.ray_setup import init_ray

    t0 = time.perf_counter()
    work = Path(cfg.demo.work_dir)
    model_dir = _demo_model(cfg, work)
    data = write_demo_task(cfg.demo, work / "data", seed=cfg.train.seed)
    started = init_ray(num_cpus=8)
    try:
        if cfg.demo.task == "preference":
            from openrlhf.demos.preference import run_preference_demo

            return _finish(cfg, run_preference_demo(cfg, work, model_dir, data), t0)
        sft_summary = sft_warm_start(cfg, model_dir, data["sft"], work / "sft_model") if cfg.demo.sft else {}
        start_model = sft_summary.get("sft_model", str(model_dir))

        rl_cfg = cfg.model_copy(deep=True)
        rl_cfg.demo.enable = False
        rl_cfg.actor.model_name_or_path = start_model
        rl_cfg.data.train_paths = [str(data["train"])]
        rl_cfg.data.eval_paths = [str(data["heldout"])]
        print(f"[demo] GRPO from {start_model}, reward server on loopback")
        summary = RLTrainer(rl_cfg, print_summary=False).fit()  # the demo prints the whole summary
    finally:
        if started:
            ray.shutdown()
    summary.update(sft_summary)
    if cfg.demo.task == "shapes":
        summary.update(per_task_heldout(rl_cfg, {"before": start_model, "after": summary["final_model"]}))
    return _finish(cfg, summary, t0)


def sft_warm_start(cfg: Config, model_dir: Path | str, train_path: Path, out_dir: Path, what: str = "") -> dict:
    """``run_sft`` of ``cfg`` (its sft and data sections) on ``model_dir`` with ``train_path``, exported to
    ``out_dir``; returns the SFT summary (``sft_model`` is the exported folder)."""
    from openrlhf.trainer.sft import run_sft

    sft_cfg = cfg.model_copy(deep=True)
    sft_cfg.actor.model_name_or_path = str(model_dir)
    sft_cfg.data.train_paths = [str(train_path)]
    sft_cfg.sft.output_dir = str(out_dir)
    print(f"[demo] SFT warm start{what} on {train_path}")
    return run_sft(sft_cfg)


def _finish(cfg: Config, summary: dict[str, Any], t0: float) -> dict[str, Any]:
    """The demo's time and held-out gain added; summary.json written (and printed)."""
    from openrlhf.trainer.metrics import write_summary

    summary["demo_seconds"] = time.perf_counter() - t0
    before, after = summary.get("heldout_accuracy_before"), summary.get("heldout_accuracy_after")
    if before is not None and after is not None:
        summary["heldout_accuracy_gain"] = after - before
    write_summary(cfg.train.output_dir, summary)
    return summary


def _demo_model(cfg: Config, work: Path) -> Path:
    """The demo's starting model folder: a tiny model built offline, or a known pretrained one, made once."""
    from openrlhf.models.gguf import fetch_known_model
    from openrlhf.models.tiny import build_tiny

    if cfg.demo.model != "tiny":
        model_dir = work / cfg.demo.model
        if not (model_dir / "config.json").is_file():
            print(f"[demo] fetching and converting {cfg.demo.model} into {model_dir}")
            fetch_known_model(cfg.demo.model, model_dir, "bf16")
        return model_dir
    kind = "vlm" if cfg.demo.task in ("shapes", "preference") else "lm"
    model_dir = work / f"tiny_{kind}"
    if not (model_dir / "config.json").is_file():
        print(f"[demo] building the tiny {kind.upper()} in {model_dir}")
        build_tiny(kind, model_dir, seed=cfg.train.seed)
    return model_dir


def per_task_heldout(cfg: Config, models: dict[str, str]) -> dict[str, float]:
    """Held-out accuracy per task and the box task's mean IoU (openrlhf.eval), for each named checkpoint:
    ``heldout_<task>_accuracy_<name>`` and ``heldout_rec_mean_iou_<name>``."""
    from openrlhf.eval.checkpoint import evaluate_checkpoint

    out: dict[str, float] = {}
    for name, path in models.items():
        eval_cfg = cfg.model_copy(deep=True)
        eval_cfg.actor.model_name_or_path = path
        eval_cfg.train.output_dir = str(Path(cfg.train.output_dir) / f"eval_{name}")
        report = evaluate_checkpoint(eval_cfg, box="first")
        for task, entry in report["tasks"].items():
            out[f"heldout_{task}_accuracy_{name}"] = entry["accuracy"]
            if "mean_iou" in entry:
                out[f"heldout_rec_mean_iou_{name}"] = entry["mean_iou"]
    return out
