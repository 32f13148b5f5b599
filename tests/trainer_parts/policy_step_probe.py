"""Run in a subprocess by test_policy_step.py: one real PolicyWorker (DeepSpeed ZeRO-2 on the CPU, world 1)
per setting, the same experience and initial weights; prints the trained weights' checksums as JSON.

argv: MODEL_DIR SETTING... where a setting is a comma list of overrides, e.g.
``train.recompute_old_logprobs=true`` or ``train.dynamic_batch_enable=true,ds.packing_samples=true``.
"""

from __future__ import annotations

import json
import sys

import torch


def experience():
    from openrlhf.workers.experience import Experience

    gen = torch.Generator().manual_seed(0)
    prompts, responses = [6, 3, 9, 4, 7, 5, 8, 2], [12, 3, 7, 16, 1, 9, 5, 11]
    pw, rw = max(prompts), max(responses)
    seq = torch.zeros(len(prompts), pw + rw, dtype=torch.long)
    att, mask = torch.zeros_like(seq), torch.zeros(len(prompts), rw)
    for r, (p, n) in enumerate(zip(prompts, responses, strict=True)):
        seq[r, pw - p : pw + n] = torch.randint(5, 2000, (p + n,), generator=gen)
        att[r, pw - p : pw + n] = 1
        mask[r, :n] = 1
    adv = torch.randn(len(prompts), 1, generator=gen).expand(-1, rw).contiguous()
    return Experience(seq, att, mask, advantages=adv, sampler_log_probs=torch.zeros(len(prompts), rw))


def run(model_dir: str, setting: str) -> dict:
    from openrlhf.config_loading import load_config
    from openrlhf.workers.distributed import free_port
    from openrlhf.workers.policy_worker import PolicyWorker

    argv = ["--actor.model_name_or_path", model_dir, "--train.micro_train_batch_size", "3"]
    argv += [
        "--train.micro_rollout_batch_size",
        "3",
        "--train.max_tokens_per_gpu",
        "48",
        "--train.learning_rate",
        "1e-3",
    ]
    for item in filter(None, setting.split(",")):
        key, value = item.split("=")
        argv += [f"--{key}", value]
    cfg, _ = load_config(argv)
    torch.manual_seed(0)
    worker = PolicyWorker(cfg.model_dump(mode="json"), 0, 1, "127.0.0.1", free_port(), total_optimizer_steps=4)
    exp = experience()
    if cfg.train.recompute_old_logprobs:
        exp.old_log_probs = worker.compute_log_probs(exp)
    metrics = worker.train_on_experience(exp)
    params = [p.detach() for p in worker.engine.module.parameters()]
    return {
        "sum": float(sum(p.double().sum() for p in params)),
        "abs": float(sum(p.double().abs().sum() for p in params)),
        "first": params[0].flatten()[:64].tolist(),
        "ratio_max": metrics.get("ratio_max"),
        "loss": metrics.get("loss"),
    }


if __name__ == "__main__":
    model_dir, *settings = sys.argv[1:]
    print("RESULT " + json.dumps({s: run(model_dir, s) for s in settings}))
