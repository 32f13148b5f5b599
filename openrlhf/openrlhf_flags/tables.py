"""The tables: OpenRLHF v0.11's names accepted here (:data:`ALIASES`), and its settings this project does not
have (:data:`REFUSED`, :data:`VALUE_REFUSALS`). Built from openrlhf/openrlhf_flags/core.py's converters.
"""

from __future__ import annotations

import math
from typing import Any

from openrlhf.openrlhf_flags.core import (
    Alias,
    Refusal,
    _dual_clip,
    _eps_clip,
    _eps_clip_low_high,
    _is_correction_enable,
    _is_correction_threshold,
    _kl_target,
    _lora_targets,
    _mapped,
    _max_len,
    _no_effect,
    _only,
    _param_dtype,
    _prompt_dataset_probs,
    _rename,
    _steps,
    _vllm_generate_batch_size,
)

_CRITIC = (
    "PPO's critic (the value model behind the gae estimator) is not implemented: the estimators here are "
    "critic-free (OpenRLHF ignores critic settings with them too)"
)
_CRITIC_INSTEAD = (
    "leave the --critic.* flags out and pick --algo.advantage.estimator group_norm | reinforce_baseline | rloo | "
    "reinforce | dr_grpo"
)
_RM = "reward models as Ray workers are not implemented: rewards come from a reward server or a reward function"
_RM_INSTEAD = (
    "serve the model behind an HTTP endpoint (openrlhf-reward-server speaks OpenRLHF's protocol) and pass "
    "--reward.remote_url URL, or --reward.remote_url my_reward.py"
)
_NO_EFFECT = "no effect here"
_IS_INSTEAD = (
    "use 0.11.0's spelling, which maps here: --algo.advantage.is_correction_enable with "
    "--algo.advantage.is_correction_type tis | icepop | seq-mask-tis (token clip, token mask, sequence mask of "
    "the ratio) and --algo.advantage.is_correction_threshold LOW HIGH"
)

ALIAS_LIST: tuple[Alias, ...] = (
    # actor: model, optimizer, loss
    _rename("actor.freeze_visual_encoder", "actor.freeze_vision_tower"),
    _rename("actor.gradient_checkpointing_enable", "ds.gradient_checkpointing"),
    _rename("actor.adam.lr", "train.learning_rate"),
    _rename("actor.adam.betas", "train.adam_betas"),
    _rename("actor.adam.weight_decay", "train.weight_decay"),
    _rename("actor.lr_scheduler", "train.lr_scheduler", "OpenRLHF's default is cosine_with_min_lr"),
    _rename("actor.lr_warmup_ratio", "train.lr_warmup_ratio", "OpenRLHF's default is 0.03"),
    _rename("actor.min_lr_ratio", "train.min_lr_ratio"),
    _rename("actor.max_norm", "train.max_norm"),
    _rename("actor.entropy_coef", "algo.entropy_coef", "0 (OpenRLHF: log only) is this project's default"),
    _rename("actor.loss_agg_mode", "algo.loss_agg_mode"),
    _mapped(
        "actor.eps_clip",
        ("algo.clip.eps_low", "algo.clip.eps_high"),
        _eps_clip,
        "sets both ends of the clip range",
        kind=float,
    ),
    _mapped(
        "actor.eps_clip_low_high",
        ("algo.clip.eps_low", "algo.clip.eps_high"),
        _eps_clip_low_high,
        "two values: LOW HIGH (DAPO's clip-higher)",
        kind=tuple[float, float],
    ),
    _mapped("actor.dual_clip", ("algo.clip.dual_clip",), _dual_clip, "off: OpenRLHF None, here 0", kind=float),
    _only(
        "actor.optim",
        str,
        ("adam",),
        "Muon is not implemented, the optimizer is AdamW",
        "leave it out (adam)",
        "adam only",
    ),
    _only(
        "actor.adam.eps",
        float,
        (1e-8,),
        "Adam's epsilon is fixed at 1e-8 (OpenRLHF's default)",
        "leave it out",
        "1e-8 only (the fixed value here)",
    ),
    _rename("actor.policy_loss_type", "algo.policy_loss_type", "gspo aggregates seq-mean-token-mean, as OpenRLHF"),
    _only(
        "actor.aux_loss_coef",
        float,
        (0.0,),
        "the MoE load-balancing loss is not implemented",
        "leave it out",
        "0 only",
    ),
    # algo
    _rename("algo.kl.init_coef", "algo.kl.init_kl_coef", "OpenRLHF's default is 0.01, here 0 (no reference model)"),
    _rename("algo.kl.use_loss", "algo.kl.use_kl_loss"),
    _mapped(
        "algo.kl.target",
        ("algo.kl.adaptive", "algo.kl.target"),
        _kl_target,
        "the same key here; as in OpenRLHF, a target switches the adaptive KL controller on unless "
        "algo.kl.adaptive is set",
        kind=float,
        deferred=True,
    ),
    _rename("algo.dynamic_filtering_enable", "algo.dynamic_filter.enable"),
    _rename(
        "algo.dynamic_filtering_range",
        "algo.dynamic_filter.score_range",
        "two values: LOW HIGH; a group is kept when its mean score is inside; OpenRLHF refills the batch with new "
        "prompts, here the step trains on the groups kept",
    ),
    _mapped(
        "algo.advantage.is_correction_enable",
        ("algo.clip.tis_cap", "algo.clip.tis_floor"),
        _is_correction_enable,
        "importance correction against the sampler's log-probs, band [0.5, 5.0] unless "
        "--algo.advantage.is_correction_threshold or algo.clip.tis_cap / tis_floor say otherwise",
        kind=bool,
    ),
    _rename("algo.advantage.is_correction_type", "algo.clip.tis_mode", "tis | icepop | seq-mask-tis"),
    _mapped(
        "algo.advantage.is_correction_threshold",
        ("algo.clip.tis_floor", "algo.clip.tis_cap"),
        _is_correction_threshold,
        "two values: LOW HIGH; as in OpenRLHF, no effect unless the correction is on",
        kind=tuple[float, float],
        deferred=True,
    ),
    _no_effect(
        "algo.advantage.lambd", float, "GAE's lambda: no effect with the critic-free estimators, here as in OpenRLHF"
    ),
    # data
    _rename(
        "data.prompt_dataset",
        "data.train_paths",
        "OpenRLHF's comma-separated string or a list; local files (no hub download)",
    ),
    _mapped(
        "data.prompt_probs",
        (),
        _prompt_dataset_probs,
        "one dataset (or none) only",
        kind=str,
    ),
    _only(
        "data.prompt_split",
        str,
        ("train",),
        "files are read whole; a Hugging Face dataset split other than train is not selectable",
        "point --data.prompt_dataset at the split's file",
        "train only (a local file is its train split)",
    ),
    _only(
        "data.apply_chat_template",
        bool,
        (True,),
        "prompts always go through the model's chat template",
        "drop the flag; set the template's extras with --data.system_prompt / --data.task_suffix",
        "always on here",
    ),
    _mapped(
        "data.max_len",
        ("vllm.max_model_len", "data.prompt_max_len", "rollout.max_new_tokens"),
        _max_len,
        "total prompt + response budget: vllm.max_model_len; with --rollout.max_new_tokens the prompt budget is "
        "max_len - max_new_tokens, else the response budget is max_len - data.prompt_max_len",
        kind=int,
        deferred=True,
    ),
    _rename("eval.dataset", "data.eval_paths", "comma-separated string or a list"),
    _mapped(
        "eval.steps",
        ("train.eval_steps",),
        _steps("train.eval_steps"),
        "-1 (OpenRLHF: never) becomes 0: evaluated at the start and the end only, when there is eval data",
        kind=int,
    ),
    _only(
        "eval.split",
        str,
        ("train",),
        "files are read whole; a Hugging Face dataset split other than train is not selectable",
        "point --eval.dataset at the split's file",
        "train only",
    ),
    # rollout / train batch geometry
    _rename("rollout.batch_size", "train.rollout_batch_size", "prompts per step (OpenRLHF's default 1024)"),
    _rename("rollout.micro_batch_size", "train.micro_rollout_batch_size", "samples per log-prob forward per GPU"),
    _mapped(
        "rollout.vllm_generate_batch_size",
        (),
        _vllm_generate_batch_size,
        "equal to --rollout.batch_size only (over-sampling needs the async pipeline)",
        kind=int,
        deferred=True,
    ),
    _rename("train.micro_batch_size", "train.micro_train_batch_size", "samples per GPU per forward/backward"),
    _rename("train.batch_size", "train.train_batch_size", "samples per optimizer step (OpenRLHF's default 128)"),
    _rename(
        "train.async_queue_size",
        "train.max_staleness",
        "OpenRLHF: slots of the queue by which its generator may run ahead of the trainer, so at most that many "
        "updates between a batch's weights and its training; here the same bound, kept exactly",
    ),
    # DeepSpeed
    _mapped(
        "ds.param_dtype",
        ("ds.bf16",),
        _param_dtype,
        "bf16 -> ds.bf16 true (OpenRLHF's default is bf16; here ds.bf16 is off unless set); fp16 is refused",
        kind=str,
    ),
    _rename("ds.attn_implementation", "actor.attn_implementation"),
    _rename("ds.lora.rank", "actor.lora.rank"),
    _rename("ds.lora.alpha", "actor.lora.alpha"),
    _rename("ds.lora.dropout", "actor.lora.dropout"),
    _mapped(
        "ds.lora.target_modules",
        ("actor.lora.target_modules",),
        _lora_targets,
        "module names; 'all-linear' is refused",
        kind=list[str],
    ),
    _only(
        "ds.tensor_parallel_size",
        int,
        (1,),
        "DeepSpeed tensor parallelism (AutoTP) for training is not implemented; ZeRO shards the model",
        "use --ds.zero_stage 3",
        "1 only",
    ),
    _only(
        "ds.ring_attn_size",
        int,
        (1,),
        "ring attention (context parallelism) is not implemented",
        "shorten sequences or use more data-parallel ranks",
        "1 only",
    ),
    _no_effect(
        "ds.ring_attn_head_stride",
        int,
        "no effect without ring attention, here as in OpenRLHF with ds.ring_attn_size 1",
    ),
    # checkpoints
    _rename(
        "ckpt.output_dir",
        "train.output_dir",
        "the run's folder: the final Hugging Face model is written to <output_dir>/final_model",
    ),
    _mapped(
        "ckpt.save_steps",
        ("ckpt.interval",),
        _steps("ckpt.interval"),
        "-1 (OpenRLHF: never) becomes 0: a checkpoint is saved at the end only",
        kind=int,
    ),
    _rename("ckpt.max_num", "ckpt.keep"),
    _only(
        "ckpt.max_mem",
        float,
        (math.inf,),
        "a checkpoint-folder size cap is not implemented",
        "use --ckpt.max_num",
        "inf only",
    ),
    # logging
    _only(
        "logger.logging_steps",
        int,
        (1,),
        "metrics are logged every step",
        "leave it out",
        "1 only (every step)",
    ),
    _rename("logger.wandb.project", "logger.wandb_project"),
    _rename("logger.wandb.run_name", "logger.wandb_run_name"),
)

ALIASES: dict[str, Alias] = {alias.name: alias for alias in ALIAS_LIST}

REFUSAL_LIST: tuple[Refusal, ...] = (
    # not yet: other issues add them under these names
    Refusal(
        "algo.advantage.is_correction_level",
        "OpenRLHF 0.11.2's gated importance correction (level / mode / gating) is not implemented in that form",
        _IS_INSTEAD,
    ),
    Refusal(
        "algo.advantage.is_correction_mode",
        "OpenRLHF 0.11.2's gated importance correction (level / mode / gating) is not implemented in that form",
        _IS_INSTEAD,
    ),
    Refusal(
        "algo.advantage.is_correction_gating",
        "divergence-gated (binary_kl, tv) importance correction is not implemented",
        _IS_INSTEAD,
    ),
    # not here
    Refusal("critic.model_name_or_path", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.num_nodes", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.num_gpus_per_node", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.adam.lr", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.adam.betas", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.adam.eps", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.adam.weight_decay", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.optim", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.lr_scheduler", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.lr_warmup_ratio", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.min_lr_ratio", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.max_norm", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.value_clip", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.freezing_steps", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.save_value_network", _CRITIC, _CRITIC_INSTEAD),
    Refusal("train.colocate_critic_reward", _CRITIC + "; reward models run outside the trainer", _CRITIC_INSTEAD),
    Refusal("reward.model_name_or_path", _RM, _RM_INSTEAD),
    Refusal("reward.num_nodes", _RM, _RM_INSTEAD),
    Refusal("reward.num_gpus_per_node", _RM, _RM_INSTEAD),
    Refusal("reward.offload", _RM, _RM_INSTEAD),
    Refusal(
        "reward.normalize_enable",
        "running mean/std reward normalization is not implemented",
        "the group estimators (group_norm, reinforce_baseline, rloo) normalize within a prompt's group",
    ),
    Refusal(
        "reward.clip_range",
        "OpenRLHF clips the reward after the group baseline; here rewards are clipped before the estimator",
        "--algo.advantage.reward_clip C clips raw rewards to [-C, C]",
    ),
    Refusal(
        "reward.overlong_buffer_len",
        "DAPO's overlong length penalty is not implemented in the trainer",
        "score length in the reward function or server",
    ),
    Refusal(
        "reward.overlong_penalty_factor",
        "DAPO's overlong length penalty is not implemented in the trainer",
        "score length in the reward function or server",
    ),
    Refusal(
        "train.full_determinism_enable",
        "torch's deterministic-algorithms mode is not switched on",
        "runs are seeded with --train.seed",
    ),
    Refusal("train.enable_ema", "an EMA copy of the policy is not kept", "leave it out"),
    Refusal("train.ema_beta", "an EMA copy of the policy is not kept", "leave it out"),
    Refusal(
        "ref.offload",
        "offloading the reference model to CPU is not implemented",
        "colocate it instead: --train.colocate_actor_ref",
    ),
    Refusal(
        "ds.load_in_4bit",
        "QLoRA (4-bit base weights) is not implemented",
        "use LoRA on bf16 weights: --ds.lora.rank R",
    ),
    Refusal("ds.zpg", "ZeRO++ hierarchical partitioning is not exposed", "leave it out"),
    Refusal("ds.grad_accum_dtype", "the gradient-accumulation dtype is not exposed", "leave it out"),
    Refusal("ds.overlap_comm", "DeepSpeed's overlap_comm is not exposed", "leave it out"),
    Refusal("ds.deepcompile", "DeepSpeed's deepcompile is not exposed", "leave it out"),
    Refusal("ds.use_liger_kernel", "Liger kernels are not used", "leave it out"),
    Refusal(
        "ds.use_universal_ckpt",
        "DeepSpeed universal checkpoints are not written; resume needs the same world size",
        "leave it out",
    ),
    Refusal("ds.experts_implementation", "the MoE experts implementation is not exposed", "leave it out"),
    Refusal("ds.value_head_prefix", _CRITIC, _CRITIC_INSTEAD),
    Refusal(
        "actor.gradient_checkpointing_reentrant",
        "gradient checkpointing is always non-reentrant here",
        "use --actor.gradient_checkpointing_enable alone",
    ),
    Refusal("actor.muon.lr", "Muon is not implemented, the optimizer is AdamW", "use --actor.adam.lr"),
    Refusal("actor.muon.momentum", "Muon is not implemented, the optimizer is AdamW", "leave it out"),
    Refusal("actor.muon.ns_steps", "Muon is not implemented, the optimizer is AdamW", "leave it out"),
    Refusal("actor.muon.nesterov", "Muon is not implemented, the optimizer is AdamW", "leave it out"),
    Refusal("actor.muon.no_nesterov", "Muon is not implemented, the optimizer is AdamW", "leave it out"),
    Refusal("critic.muon.lr", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.muon.momentum", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.muon.ns_steps", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.muon.nesterov", _CRITIC, _CRITIC_INSTEAD),
    Refusal("critic.muon.no_nesterov", _CRITIC, _CRITIC_INSTEAD),
    Refusal(
        "algo.kl.unbiased_gradient",
        "the importance-weighted KL-loss gradient is not implemented",
        "leave it out",
    ),
    Refusal(
        "vllm.sync_with_ray",
        "weight sync through Ray's collective library is not implemented",
        "choose the path with --rollout.weight_sync ipc | broadcast | object_store",
    ),
    Refusal(
        "data.input_template",
        "'{}' input templates are not applied: prompts always go through the chat template",
        "use --data.system_prompt and --data.task_suffix",
    ),
    Refusal("data.disable_fast_tokenizer", "the fast tokenizer is always used", "leave it out"),
    Refusal(
        "data.dataloader_num_workers",
        "prompts are loaded once by the driver, there is no dataloader",
        "leave it out",
    ),
    Refusal("ckpt.disable_ds", "checkpoints are DeepSpeed checkpoints (needed to resume)", "leave it out"),
    Refusal(
        "logger.wandb.key",
        "the wandb API key is not a config value (it would be written to config.yaml)",
        "export WANDB_API_KEY=... and pass --logger.wandb.project NAME",
    ),
    Refusal("logger.wandb.org", "the wandb entity is not a config value", "export WANDB_ENTITY=..."),
    Refusal("logger.wandb.group", "wandb run groups are not a config value", "export WANDB_RUN_GROUP=..."),
    Refusal("local_rank", "DeepSpeed's launcher argument is not used: Ray places the workers", "leave it out"),
    Refusal("use_ms", "ModelScope hub downloads are not implemented", "pass a local checkpoint folder"),
)

REFUSED: dict[str, Refusal] = {refusal.name: refusal for refusal in REFUSAL_LIST}

# A value of one of this project's own keys that names an OpenRLHF feature missing here.
VALUE_REFUSALS: dict[tuple[str, Any], Refusal] = {
    ("algo.advantage.estimator", "gae"): Refusal(
        "algo.advantage.estimator gae",
        "PPO with a critic (GAE) is not implemented; note that gae is OpenRLHF's default estimator",
        "pick --algo.advantage.estimator group_norm | reinforce_baseline | rloo | reinforce | dr_grpo",
    ),
    ("algo.advantage.estimator", "flash_reinforce"): Refusal(
        "algo.advantage.estimator flash_reinforce",
        "the rollout-batch-mean baseline (FlashREINFORCE) is not implemented",
        "with one sample per prompt use --algo.advantage.estimator reinforce",
    ),
}


def known_names() -> list[str]:
    """Every OpenRLHF name this package knows (aliases and refusals), without the leading ``--``."""
    return sorted({*ALIASES, *REFUSED})
