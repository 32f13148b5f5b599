"""Evaluate a checkpoint over a dataset: greedy answers from a rollout engine in this process, then scores.

The checkpoint is ``actor.model_name_or_path``, the dataset ``data.eval_paths`` (any format the loader
reads; each row's task picks its metric, see :mod:`openrlhf.eval.metrics`). Prompts are built exactly as in
training (:class:`openrlhf.rollout.prompt_encoder.PromptEncoder`: chat template, ``data.system_prompt``,
``data.task_suffix``, min/max pixels), so a box label carries ``image_size`` and ``input_size``. Generation
uses ``rollout.backend`` (auto: vLLM when CUDA and vLLM are there, else the HF engine; vllm: also vLLM's CPU
build on CPUs, ``vllm.tensor_parallel_size`` workers as vLLM's own processes), up to
``rollout.max_new_tokens`` tokens, sampled as training's held-out evaluation is (``eval.temperature``,
``eval.n_samples_per_prompt``: greedy with one answer per prompt by default). With n answers per prompt,
``accuracy`` is the mean over every answer (pass@1 estimated from n samples) and ``pass{n}`` the share of prompts
with at least one correct answer.

Writes ``<train.output_dir>/eval_report.json`` (summary) and ``eval_outputs.json`` (every answer, in
VLM-R1's log format, so ``openrlhf-eval --from-outputs`` re-scores it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from openrlhf.config import Config, ConfigError
from openrlhf.eval.metrics import EVAL_TASKS, IOU_THRESHOLD, EvalRow, score_row, summarize_rows
from openrlhf.utils.errors import UserError


def make_engine(cfg: Config, generated_tokens: int | None = None):
    """An in-process rollout engine for ``actor.model_name_or_path`` (no Ray); ``generated_tokens``: the work
    planned for it (None: a long-lived engine), which ``rollout.backend auto`` weighs on CPUs."""
    from openrlhf.models.loading import is_vision_model, load_config
    from openrlhf.plan.layout import resolve_backend
    from openrlhf.rollout.factory import max_model_len
    from openrlhf.utils.vllm_builds import installed_vllm_build
    from openrlhf.workers.distributed import cluster_gpu_count

    path = cfg.actor.model_name_or_path
    build = installed_vllm_build()
    vision = is_vision_model(load_config(path, cfg.actor.trust_remote_code))
    chosen = resolve_backend(
        cfg, cluster_gpu_count(), build.name if build else None, vision_model=vision, generated_tokens=generated_tokens
    )
    if chosen == "vllm":
        from openrlhf.rollout.vllm_engine import VLLMRolloutEngine

        return VLLMRolloutEngine(
            path,
            tensor_parallel_size=cfg.vllm.tensor_parallel_size,
            gpu_memory_utilization=cfg.vllm.gpu_memory_utilization,
            enforce_eager=cfg.vllm.enforce_eager,
            max_model_len=max_model_len(cfg),
            dtype=cfg.actor.dtype,
            seed=cfg.train.seed,
            min_pixels=cfg.data.min_pixels,
            max_pixels=cfg.data.max_pixels,
            trust_remote_code=cfg.actor.trust_remote_code,
            in_placement_group=False,  # no Ray here: with TP > 1 vLLM starts its own worker processes
            cpu_kvcache_space_gb=cfg.vllm.cpu_kvcache_space_gb,
            cpu_threads=cfg.vllm.cpu_threads,
        )
    from openrlhf.rollout.hf_engine import HFRolloutEngine

    return HFRolloutEngine(
        path,
        dtype=cfg.actor.dtype,
        generate_batch_size=cfg.rollout.generate_batch_size,
        min_pixels=cfg.data.min_pixels,
        max_pixels=cfg.data.max_pixels,
        num_threads=cfg.train.num_threads_per_worker,
        seed=cfg.train.seed,
        trust_remote_code=cfg.actor.trust_remote_code,
    )


def engine_description(info: dict[str, Any], cfg: Config) -> str:
    """ "vllm (cpu build), float32, tensor parallel 2" or "hf, float32": what generated the answers."""
    if info["backend"] == "vllm":
        return f"vllm ({info['build']} build), {info['dtype']}, tensor parallel {cfg.vllm.tensor_parallel_size}"
    return f"hf, {info['dtype']}"


def _question(sample) -> str:
    for message in reversed(sample.messages):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return ""


def evaluate_checkpoint(cfg: Config, *, box: str = "last", iou_threshold: float = IOU_THRESHOLD) -> dict[str, Any]:
    """Answers to ``data.eval_paths`` from ``actor.model_name_or_path`` (greedy unless ``eval.*`` asks for
    samples); score and write them."""
    from openrlhf.data import load_samples
    from openrlhf.rollout.prompt_encoder import PromptEncoder
    from openrlhf.trainer.evaluation import eval_sampling_params

    if not cfg.actor.model_name_or_path:
        raise ConfigError("actor.model_name_or_path is empty: give the checkpoint folder to evaluate")
    if not Path(cfg.actor.model_name_or_path).exists():
        raise FileNotFoundError(f"actor.model_name_or_path: {cfg.actor.model_name_or_path}: no such folder")
    if not cfg.data.eval_paths:
        raise ConfigError("data.eval_paths is empty: give the dataset files to evaluate on")
    t0 = time.perf_counter()
    samples = load_samples(cfg.data.eval_paths, cfg.data, seed=cfg.train.seed).samples
    for sample in samples:
        if sample.task not in EVAL_TASKS:
            raise UserError(
                f"{sample.where}: task {sample.task!r} has no evaluation metric (supported: {', '.join(EVAL_TASKS)})"
            )
    encoder = PromptEncoder(cfg)
    prompts = [encoder.encode(s) for s in samples]
    params = eval_sampling_params(cfg, cfg.train.seed)
    engine = make_engine(cfg, generated_tokens=len(prompts) * params.n * cfg.rollout.max_new_tokens)
    outputs = engine.generate([p.request for p in prompts], params)
    gen_seconds = time.perf_counter() - t0
    rows, groups = [], []
    for prompt, outs in zip(prompts, outputs, strict=True):
        sample = prompt.sample
        group = []
        for out in outs:
            row = EvalRow(
                task=sample.task,
                question=_question(sample),
                ground_truth=sample.label,
                model_output=out.text,
                where=sample.where,
                image_size=sample.label_fields.get("image_size"),
                input_size=sample.label_fields.get("input_size"),
            )
            score_row(row, box=box, iou_threshold=iou_threshold)
            group.append(row)
        rows.extend(group)
        groups.append(group)
    sampling = {"temperature": params.temperature, "n_samples_per_prompt": params.n}
    if params.n > 1:
        sampling[f"pass{params.n}"] = sum(any(r.scores["correct"] for r in g) for g in groups) / max(1, len(groups))
    report: dict[str, Any] = {
        "checkpoint": cfg.actor.model_name_or_path,
        "datasets": list(cfg.data.eval_paths),
        "engine": engine_description(engine.model_info(), cfg),
        "box": box,
        "iou_threshold": iou_threshold,
        **summarize_rows(rows),
        **sampling,
        "seconds": time.perf_counter() - t0,
        "generation_seconds": gen_seconds,
    }
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = [{**r.as_json(), "correct": r.scores["correct"]} for r in rows]
    (out / "eval_outputs.json").write_text(json.dumps({"accuracy": report["accuracy"], "results": results}, indent=1))
    (out / "eval_report.json").write_text(json.dumps(report, indent=2))
    report["report_path"] = str(out / "eval_report.json")
    return report
