"""Supervised warm start with the same DeepSpeed policy workers and data formats as RL.

Loss: token-mean negative log-likelihood of the reference response tokens given the prompt,
    L = - sum_{i,t} m_{i,t} log p(y_{i,t} | x_i, y_{i,<t}) / sum_{i,t} m_{i,t}.
The target is ``Sample.response`` when the row has one, else the label text.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

from openrlhf.config import Config
from openrlhf.data.errors import RowUnusable
from openrlhf.rollout.base import GenerationOutput
from openrlhf.rollout.prompt_encoder import PromptEncoder
from openrlhf.trainer.experience_maker import Rollout, build_experience


def _target_text(sample) -> str:
    if sample.response:
        return sample.response
    if isinstance(sample.label, str) and sample.label:
        return sample.label
    raise RowUnusable(f"{sample.where}: no response or text label to fine-tune on")


def run_sft(cfg: Config) -> dict[str, Any]:
    """Fine-tune cfg.actor on cfg.data.train_paths; export to sft.output_dir (default <output_dir>/sft_model)."""
    import ray
    from tqdm import tqdm

    from openrlhf.data import load_samples
    from openrlhf.trainer.metrics import write_summary
    from openrlhf.trainer.preflight import absolutize_model_paths
    from openrlhf.trainer.ray_setup import open_cluster
    from openrlhf.trainer.run_resources import start_policy_group

    cfg = cfg.model_copy(deep=True)
    absolutize_model_paths(cfg)
    samples = load_samples(cfg.data.train_paths, cfg.data, seed=cfg.train.seed).samples
    encoder = PromptEncoder(cfg)
    tok = encoder.tokenizer
    eos = tok.eos_token or ""
    encoded = []
    for sample in samples:
        prompt = encoder.encode(sample)
        target = tok(_target_text(sample) + eos, add_special_tokens=False)["input_ids"][: cfg.sft.max_len]
        encoded.append((prompt, GenerationOutput(prompt.request.prompt_token_ids, target, "", [], "stop")))

    out_dir = Path(cfg.sft.output_dir or Path(cfg.train.output_dir) / "sft_model")
    layout, started = open_cluster(cfg, worker_mode="ray")
    world = layout.policy_ranks
    batch = max(world, cfg.sft.batch_size - cfg.sft.batch_size % world)
    steps_per_epoch = max(1, len(encoded) // batch)
    total = steps_per_epoch * cfg.sft.epochs
    init_kwargs = {
        "cfg_dict": cfg.model_dump(mode="json"),
        "total_optimizer_steps": total,
        "learning_rate": cfg.sft.learning_rate,
    }
    group, pg = start_policy_group(cfg, layout, name="sft", init_kwargs=init_kwargs)
    rng = random.Random(cfg.train.seed)
    losses: list[float] = []
    t0 = time.perf_counter()
    try:
        bar = tqdm(total=total, desc="sft", disable=not cfg.logger.progress_bar)
        for _epoch in range(cfg.sft.epochs):
            order = list(range(len(encoded)))
            rng.shuffle(order)
            for step in range(steps_per_epoch):
                chunk = [encoded[i] for i in order[step * batch : (step + 1) * batch]]
                rollout = Rollout([p for p, _ in chunk], [o for _, o in chunk], 1)
                exp = build_experience(rollout, tok.pad_token_id)
                results = group.call_per_rank("sft_step", [(s,) for s in exp.shard(world)])
                losses.append(sum(r["sft/loss"] for r in results))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
        bar.close()
        group.call("export_hf", str(out_dir))
    finally:  # the workers go also when a step fails, so a cluster that outlives this run gets them back
        group.shutdown()
        if pg is not None:
            ray.util.remove_placement_group(pg)
        if started:
            ray.shutdown()
    summary = {
        "sft_steps": total,
        "sft_loss_first": losses[0] if losses else math.nan,
        "sft_loss_last": losses[-1] if losses else math.nan,
        "sft_seconds": time.perf_counter() - t0,
        "sft_model": str(out_dir),
    }
    write_summary(out_dir, summary, print_table=False)
    return summary
