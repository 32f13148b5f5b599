"""The embedded default: build a tiny LM, SFT-warm it on a generated task, then GRPO, with held-out accuracy
before and after. What `openrlhf-train` runs with no --config (configs/demo_text.yaml).

``demo.model: smollm2-135m-instruct`` (configs/demo_smollm2.yaml) takes a real pretrained model instead, fetched
and converted once (openrlhf.models.gguf), usually without the SFT warm start (``demo.sft: false``).

``demo.task: shapes`` (configs/demo_vlm.yaml) runs the same pipeline on the tiny Qwen2.5-VL and the generated
shapes images, and adds per-task held-out accuracy and the box task's mean IoU before and after GRPO.
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
    from openrlhf.trainer.metrics import write_summary
    from openrlhf.trainer.ray_setup import init_ray
    from openrlhf.trainer.sft import run_sft

    t0 = time.perf_counter()
    work = Path(cfg.demo.work_dir)
    model_dir = _demo_model(cfg, work)
    data = write_demo_task(cfg.demo, work / "data", seed=cfg.train.seed)
    started = init_ray(num_cpus=8)
    try:
        sft_summary: dict[str, Any] = {}
        if cfg.demo.sft:
            sft_cfg = cfg.model_copy(deep=True)
            sft_cfg.actor.model_name_or_path = str(model_dir)
            sft_cfg.data.train_paths = [str(data["sft"])]
            sft_cfg.sft.output_dir = str(work / "sft_model")
            print(f"[demo] SFT warm start on {data['sft']}")
            sft_summary = run_sft(sft_cfg)
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
    kind = "vlm" if cfg.demo.task == "shapes" else "lm"
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
