"""Short VLM training runs through the real trainer: Ray, DeepSpeed on CPU, HF engine, reward server on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from openrlhf.config_loading import load_config
from openrlhf.models.loading import load_model, vision_tower

REPO = Path(__file__).resolve().parents[2]


def _read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_grpo_on_mixed_vlm_tasks_with_frozen_vision_tower_and_merged_lora(
    vlm_ray, tiny_vlm_path, shapes_task, tmp_path
):
    """rec / counting / choice rows in one run, rewards routed by task; the export merges LoRA and loads plainly."""
    from openrlhf.trainer.driver import RLTrainer

    out = tmp_path / "run"
    cfg, _ = load_config(
        [
            "--config", str(shapes_task["empty_config"]),
            "--actor.model_name_or_path", str(tiny_vlm_path),
            "--actor.freeze_vision_tower", "true",
            "--actor.lora.rank", "8",
            "--actor.lora.alpha", "16",
            "--data.train_paths", f"[{shapes_task['train']}]",
            "--data.eval_paths", f"[{shapes_task['heldout']}]",
            "--data.max_pixels", "12544",
            "--data.task_suffix", "r1",
            "--reward.launch_local_server", "true",
            "--reward.server_config", str(Path(__file__).with_name("vlm_recipes.yaml")),
            "--train.output_dir", str(out),
            "--train.max_steps", "1",
            "--train.rollout_batch_size", "4",
            "--train.micro_rollout_batch_size", "4",
            "--train.micro_train_batch_size", "4",
            "--train.learning_rate", "5e-2",
            "--rollout.n_samples_per_prompt", "4",
            "--rollout.max_new_tokens", "10",
            "--actor.num_gpus_per_node", "1",
            "--ds.zero_stage", "2",
            "--logger.progress_bar", "false",
        ]
    )  # fmt: skip
    summary = RLTrainer(cfg).fit()
    rows = _read_metrics(out)
    assert [r["step"] for r in rows] == [1]
    for name in ("iou", "count_accuracy", "choice_accuracy", "format", "length"):  # routed by each row's task
        assert f"reward/{name}" in rows[0], sorted(rows[0])
    assert rows[0]["reward/std"] > 0
    assert rows[-1]["policy/optimizer_steps"] == 1.0
    assert "heldout_accuracy_before" in summary and "heldout_accuracy_after" in summary

    # The exported model is a plain Qwen2.5-VL folder (LoRA merged): no adapter files, no lora weights.
    final = Path(summary["final_model"])
    assert not (final / "adapter_config.json").exists()
    base, trained = load_model(tiny_vlm_path), load_model(final)
    base_sd, trained_sd = base.state_dict(), trained.state_dict()
    assert base_sd.keys() == trained_sd.keys()
    name, _ = vision_tower(base)
    vision = [k for k in base_sd if k.startswith(name) or ".visual." in k or k.startswith("visual")]
    assert vision
    assert all(torch.equal(base_sd[k], trained_sd[k]) for k in vision), "the frozen vision tower moved"
    lora_targets = [k for k in base_sd if "language_model" in k and "q_proj.weight" in k]
    assert lora_targets and any(not torch.equal(base_sd[k], trained_sd[k]) for k in lora_targets)
    untouched = [k for k in base_sd if "language_model" in k and "mlp" in k]
    assert all(torch.equal(base_sd[k], trained_sd[k]) for k in untouched), "LoRA trained only its target modules"


def test_demo_shapes_short_run_writes_summary(vlm_ray, tmp_path):
    """configs/demo_vlm.yaml at a tiny size: SFT warm start, eval, GRPO, eval; summary.json with the figures."""
    from openrlhf.cli.train import main

    out = tmp_path / "demo"
    argv = [
        "--config", str(REPO / "configs" / "demo_vlm.yaml"),
        "--demo.work_dir", str(tmp_path / "work"),
        "--train.output_dir", str(out),
        "--demo.num_train", "32",
        "--demo.num_heldout", "8",
        "--sft.epochs", "1",
        "--train.max_steps", "1",
        "--train.rollout_batch_size", "4",
        "--rollout.n_samples_per_prompt", "4",
        "--rollout.max_new_tokens", "16",
        "--logger.progress_bar", "false",
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("heldout_accuracy_before", "heldout_accuracy_after", "heldout_rec_mean_iou_before",
                "heldout_rec_mean_iou_after", "sft_model", "final_model"):  # fmt: skip
        assert key in summary, f"{key} missing from summary.json: {sorted(summary)}"
    assert 0.0 <= summary["heldout_rec_mean_iou_after"] <= 1.0
