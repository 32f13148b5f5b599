"""The flag tables of docs/migrating_from_openrlhf.md, and the reference tables only they show."""

from __future__ import annotations

from typing import Any

from openrlhf.openrlhf_flags.flat_flags import FLAT_FLAGS, flat_status
from openrlhf.openrlhf_flags.tables import ALIAS_LIST, REFUSAL_LIST, VALUE_REFUSALS

# OpenRLHF 0.11 defaults that differ from this project's, for settings both have: an OpenRLHF command that
# leaves the flag out gets this project's default. (OpenRLHF flag, its default, our key, our default note.)
DEFAULTS_DIFFER: tuple[tuple[str, Any, str, str], ...] = (
    ("algo.advantage.estimator", "gae", "algo.advantage.estimator", "group_norm (gae is not implemented)"),
    ("algo.kl.init_coef", 0.01, "algo.kl.init_kl_coef", "0: no KL, no reference model"),
    ("algo.kl.estimator", "k1", "algo.kl.estimator", "set by algo.name's preset: grpo -> k3 (as a loss)"),
    ("algo.kl.use_loss", False, "algo.kl.use_kl_loss", "set by algo.name's preset: grpo -> true"),
    ("rollout.n_samples_per_prompt", 1, "rollout.n_samples_per_prompt", "4"),
    ("rollout.batch_size", 1024, "train.rollout_batch_size", "8"),
    ("train.batch_size", 128, "train.train_batch_size", "0: the step's whole experience"),
    ("train.micro_batch_size", 1, "train.micro_train_batch_size", "8"),
    ("rollout.micro_batch_size", 1, "train.micro_rollout_batch_size", "16"),
    ("rollout.max_new_tokens", None, "rollout.max_new_tokens", "64 (OpenRLHF: what data.max_len leaves)"),
    ("data.max_len", 2048, "vllm.max_model_len", "0: data.prompt_max_len + rollout.max_new_tokens"),
    ("data.input_key", "input", "data.input_key", "prompt"),
    ("data.image_key", "images", "data.image_key", "image"),
    ("actor.num_gpus_per_node", 8, "actor.num_gpus_per_node", "1"),
    ("ref.num_gpus_per_node", 8, "ref.num_gpus_per_node", "1"),
    ("actor.lr_scheduler", "cosine_with_min_lr", "train.lr_scheduler", "constant_with_warmup"),
    ("actor.lr_warmup_ratio", 0.03, "train.lr_warmup_ratio", "0"),
    ("ds.param_dtype", "bf16", "ds.bf16", "false (fp32 unless set)"),
    ("ds.attn_implementation", "flash_attention_2", "actor.attn_implementation", "auto"),
    ("vllm.gpu_memory_utilization", 0.95, "vllm.gpu_memory_utilization", "0.5"),
    ("vllm.enable_prefix_caching", False, "vllm.enable_prefix_caching", "true"),
    ("ckpt.max_num", 3, "ckpt.keep", "2"),
    ("ckpt.path", "./ckpt/checkpoints_ppo_ray", "ckpt.path", "<train.output_dir>/ckpt"),
    ("ckpt.output_dir", "./ckpt", "train.output_dir", "outputs/run"),
    ("ckpt.best_metric_key", "", "ckpt.best_metric_key", "none (off; '' picks eval/pass1, as OpenRLHF's auto)"),
    ("eval.temperature", 0.6, "eval.temperature", "empty: 0 (greedy) with one answer per prompt, else 0.6"),
    ("eval.n_samples_per_prompt", 4, "eval.n_samples_per_prompt", "1"),
    ("data.max_images_per_prompt", 0, "data.max_images_per_prompt", "0: 8 (OpenRLHF: 0 is text-only)"),
)


# OpenRLHF 0.11.2 flags that are keys of this project under the same name (checked against the wheel).
SAME_NAMES: tuple[str, ...] = (
    "actor.model_name_or_path", "actor.num_gpus_per_node", "actor.num_nodes", "algo.advantage.estimator",
    "algo.advantage.gamma", "algo.advantage.no_std_norm", "algo.kl.estimator", "algo.kl.horizon", "algo.kl.target",
    "ckpt.best_metric_key", "ckpt.load_enable", "ckpt.path", "ckpt.save_hf", "data.image_key", "data.input_key", "data.label_key", "data.max_images_per_prompt", "data.max_samples",
    "eval.n_samples_per_prompt", "eval.temperature", "reward.stop_properly_penalty_coef",
    "ds.adam_offload", "ds.enable_sleep", "ds.packing_samples", "ds.zero_stage", "logger.tensorboard_dir", "ref.num_gpus_per_node",
    "ref.num_nodes", "reward.remote_url", "rollout.max_new_tokens", "rollout.max_tokens_per_gpu", "rollout.n_samples_per_prompt",
    "rollout.temperature", "rollout.top_p", "train.agent_func_path", "train.async_enable", "train.partial_rollout_enable", "train.colocate_actor_ref", "train.colocate_all", "train.dynamic_batch_enable", "train.max_epochs", "train.max_tokens_per_gpu",
    "train.num_episodes", "train.seed", "vllm.enable_prefix_caching", "vllm.enable_sleep", "vllm.enforce_eager",
    "vllm.gpu_memory_utilization", "vllm.num_engines", "vllm.sync_backend", "vllm.tensor_parallel_size",
)  # fmt: skip

# --------------------------------------------------------------------------- documentation


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def migration_markdown() -> str:
    """The flag tables of docs/migrating_from_openrlhf.md (checked against this module by a test)."""
    lines = [
        "### OpenRLHF names accepted here",
        "",
        "| OpenRLHF flag | here | notes |",
        "|---|---|---|",
    ]
    for alias in sorted(ALIAS_LIST, key=lambda a: a.name):
        here = ", ".join(f"`{t}`" for t in alias.targets) if alias.targets else "(nothing to set)"
        lines.append(f"| `--{alias.name}` | {here} | {_cell(alias.note or 'same meaning')} |")
    lines += [
        "",
        "Same name, same meaning (defaults may differ, see below): "
        + ", ".join(f"`--{name}`" for name in SAME_NAMES)
        + ".",
        "",
        "### OpenRLHF flags not supported",
        "",
        "| OpenRLHF flag | status | why | instead |",
        "|---|---|---|---|",
    ]
    for refusal in sorted(REFUSAL_LIST, key=lambda r: r.name):
        status = f"not yet (#{refusal.issue})" if refusal.issue else "not here"
        lines.append(f"| `--{refusal.name}` | {status} | {_cell(refusal.reason)} | {_cell(refusal.instead)} |")
    for (key, value), refusal in VALUE_REFUSALS.items():
        lines.append(f"| `--{key} {value}` | not here | {_cell(refusal.reason)} | {_cell(refusal.instead)} |")
    lines += [
        "",
        "### Defaults that differ",
        "",
        "A flag left out of an OpenRLHF command takes this project's default, not OpenRLHF's:",
        "",
        "| OpenRLHF flag | OpenRLHF default | here | default here |",
        "|---|---|---|---|",
    ]
    for flag, default, ours, note in DEFAULTS_DIFFER:
        lines.append(f"| `--{flag}` | `{default!r}` | `{ours}` | {_cell(note)} |")
    lines += [
        "",
        "### Pre-0.10 flat flags",
        "",
        "Refused with one message that lists each flat flag used, its dotted name (OpenRLHF 0.10+) and what that "
        "name does here:",
        "",
        "| flat flag | dotted flag | here |",
        "|---|---|---|",
    ]
    for flat in sorted(FLAT_FLAGS):
        new = FLAT_FLAGS[flat]
        here = flat_status(flat) or "same name"
        dotted = f"`--{new}`" if new else "(dropped by OpenRLHF)"
        lines.append(f"| `--{flat}` | {dotted} | {_cell(here)} |")
    return "\n".join(lines) + "\n"
