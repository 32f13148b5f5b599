"""The typed config tree: the one place where defaults and validation live.

Load order: the pydantic defaults below, then a YAML file (``--config configs/x.yaml``), then dotted
command-line overrides in OpenRLHF's style (``--actor.model_name_or_path PATH --vllm.num_engines 4
--algo.advantage.estimator group_norm --train.colocate_all``). An unknown key or a bad value fails at
start with a :class:`ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config key or value that is not allowed; the message names the key, value and choices."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


# --------------------------------------------------------------------------- models


class LoraConfig(Section):
    rank: int = Field(0, ge=0, description="LoRA rank on the language model; 0 disables LoRA")
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


class ModelConfig(Section):
    model_name_or_path: str = Field("", description="HF checkpoint directory or hub id (local only here)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = "auto"
    freeze_vision_tower: bool = False
    lora: LoraConfig = LoraConfig()
    num_nodes: int = Field(1, ge=1)
    num_gpus_per_node: int = Field(1, ge=1, description="workers per node (GPUs, or CPU workers)")


class RefConfig(Section):
    model_name_or_path: str = Field("", description="empty: same checkpoint as the actor")
    num_nodes: int = Field(1, ge=1)
    num_gpus_per_node: int = Field(1, ge=1)


# --------------------------------------------------------------------------- data


DataFormat = Literal["auto", "omnirl", "vlm_r1", "r1_reward", "hf"]


class DataConfig(Section):
    train_paths: list[str] = Field(default_factory=list, description="files, or a VLM-R1 data_config YAML")
    eval_paths: list[str] = Field(default_factory=list)
    format: DataFormat = "auto"
    image_roots: list[str] = Field(default_factory=list, description="folders image paths resolve against")
    input_key: str = Field("prompt", description="prompt column of a Hugging Face dataset file")
    label_key: str = Field("label", description="label column of a Hugging Face dataset file")
    image_key: str = "image"
    task_key: str = "task"
    max_samples: int = Field(0, ge=0, description="0: all rows")
    sampling_strategy: str = Field("all", description="all | first:N | end:N | random:N | random:P%")
    on_invalid: Literal["error", "skip"] = "error"
    system_prompt: str = ""
    task_suffix: str = ""
    prompt_max_len: int = Field(1024, ge=1)
    min_pixels: int = Field(3136, ge=1)
    max_pixels: int = Field(12845056, ge=1)
    shuffle: bool = True

    @field_validator("sampling_strategy")
    @classmethod
    def _check_strategy(cls, value: str) -> str:
        from openrlhf.data.sampling import parse_sampling_strategy

        parse_sampling_strategy(value)
        return value


# --------------------------------------------------------------------------- rollout


class RolloutConfig(Section):
    backend: Literal["auto", "hf", "vllm"] = "auto"
    n_samples_per_prompt: int = Field(4, ge=1, le=16384, description="samples per prompt (vLLM's limit: 16384)")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0: greedy; vLLM refuses above 2")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(-1, ge=-1, description="-1: off")
    max_new_tokens: int = Field(64, ge=1)
    generate_batch_size: int = Field(64, ge=1, description="HF engine: sequences per generate call")
    weight_sync: Literal["auto", "ipc", "object_store", "broadcast"] = Field(
        "auto",
        description="policy -> engines: ipc (colocated: each policy rank shares a buffer on its own device, CUDA "
        "IPC or shared memory), broadcast (torch.distributed group, parameter by parameter; NCCL for vLLM, gloo "
        "on CPU) or the Ray object store; auto: ipc with train.colocate_all, else broadcast for vLLM and the "
        "object store for HF",
    )

    @model_validator(mode="after")
    def _check_sampling(self) -> RolloutConfig:
        if self.top_k == 0:
            raise ValueError("rollout.top_k=0 is not a sampler setting: -1 turns top-k off, k >= 1 keeps k tokens")
        if self.n_samples_per_prompt > 1 and self.temperature == 0:
            raise ValueError(
                f"rollout.n_samples_per_prompt={self.n_samples_per_prompt} with rollout.temperature=0: greedy "
                "decoding gives n identical samples (vLLM refuses n > 1 when greedy); set a temperature > 0"
            )
        return self


class VllmConfig(Section):
    num_engines: int = Field(1, ge=1, description="rollout engines (vLLM; the HF backend uses the same count)")
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.5, gt=0.0, le=1.0)
    enable_sleep: bool = Field(
        False, description="colocated engines free their GPU memory (weights, KV cache) while the policy trains"
    )
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    max_model_len: int = Field(0, ge=0, description="0: prompt_max_len + max_new_tokens")
    sync_backend: Literal["nccl", "gloo"] = "nccl"


# --------------------------------------------------------------------------- algorithms


class AdvantageConfig(Section):
    estimator: Literal["group_norm", "dr_grpo", "rloo", "reinforce", "reinforce_baseline"] = "group_norm"
    no_std_norm: bool = False
    eps: float = Field(1e-6, gt=0.0)
    gamma: float = Field(1.0, ge=0.0, le=1.0)
    reward_clip: float = Field(0.0, ge=0.0, description="clip rewards to [-c, c]; 0: off")


class KLConfig(Section):
    init_kl_coef: float = Field(0.0, ge=0.0, description="0: no KL, no reference workers")
    estimator: Literal["k1", "k2", "k3"] = "k3"
    use_kl_loss: bool = Field(False, description="KL as a loss term (GRPO) instead of a reward penalty")
    adaptive: bool = False
    target: float = Field(0.1, gt=0.0)
    horizon: int = Field(10000, ge=1)
    log_ratio_clamp: float = Field(10.0, gt=0.0)


class ClipConfig(Section):
    eps_low: float = Field(0.2, ge=0.0)
    eps_high: float = Field(0.2, ge=0.0, description="DAPO clip-higher when > eps_low")
    dual_clip: float = Field(0.0, ge=0.0, description="dual-clip constant c > 1; 0: off")

    @field_validator("dual_clip")
    @classmethod
    def _check_dual_clip(cls, value: float) -> float:
        if 0.0 < value <= 1.0:
            raise ValueError("dual_clip must be 0 (off) or greater than 1")
        return value

    tis_cap: float = Field(0.0, ge=0.0, description="truncated importance weight cap vs sampler; 0: off")


class PreClipConfig(Section):
    enable: bool = False
    log_ratio_min: float = -6.907755278982137  # log(1e-3)
    log_ratio_max: float = 6.907755278982137  # log(1e3)

    @model_validator(mode="after")
    def _check_order(self) -> PreClipConfig:
        if self.log_ratio_min >= self.log_ratio_max:
            raise ValueError(f"log_ratio_min ({self.log_ratio_min}) must be below log_ratio_max ({self.log_ratio_max})")
        return self


class AdvantageFilterConfig(Section):
    enable: bool = False
    mode: Literal["paper", "r1_reward_code"] = "paper"
    sigma: float = Field(3.0, gt=0.0)
    max_abs: float = Field(10.0, gt=0.0)


class DynamicFilterConfig(Section):
    enable: bool = False
    drop_equal_scores: bool = True
    score_range: tuple[float, float] = (0.0, 1.0)

    @field_validator("score_range")
    @classmethod
    def _check_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(f"score_range low {value[0]} is above high {value[1]}")
        return value


class AlgoConfig(Section):
    name: Literal["grpo", "reinforce_pp", "stable_reinforce"] = "grpo"
    advantage: AdvantageConfig = AdvantageConfig()
    kl: KLConfig = KLConfig()
    clip: ClipConfig = ClipConfig()
    pre_clip: PreClipConfig = PreClipConfig()
    advantage_filter: AdvantageFilterConfig = AdvantageFilterConfig()
    dynamic_filter: DynamicFilterConfig = DynamicFilterConfig()
    loss_agg_mode: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"] = (
        "token-mean"
    )
    entropy_coef: float = Field(0.0, ge=0.0)


# --------------------------------------------------------------------------- reward


class RewardConfig(Section):
    remote_url: list[str] = Field(default_factory=list, description="reward servers; batches are sharded")
    reward_func: str = Field("", description="a .py file defining reward_func(queries, prompts, labels, **kw)")
    launch_local_server: bool = Field(False, description="start the reward server on a free loopback port")
    server_config: str = Field("", description="recipes YAML for the locally launched server")
    timeout: float = Field(60.0, gt=0.0)
    retries: int = Field(3, ge=0)
    backoff: float = Field(0.5, ge=0.0, description="seconds, doubled after each failed try")
    concurrency: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=1, description="samples per HTTP request")
    token_env: str = Field("", description="environment variable holding a bearer token")


# --------------------------------------------------------------------------- training


class TrainConfig(Section):
    output_dir: str = "outputs/run"
    seed: int = 42
    rollout_batch_size: int = Field(8, ge=1, description="prompts per step")
    train_batch_size: int = Field(0, ge=0, description="samples per optimizer step; 0: whole experience")
    micro_train_batch_size: int = Field(8, ge=1)
    micro_rollout_batch_size: int = Field(16, ge=1, description="samples per log-prob forward")
    learning_rate: float = Field(1e-6, gt=0.0)
    lr_scheduler: Literal["constant_with_warmup", "cosine_with_min_lr", "linear"] = "constant_with_warmup"
    lr_warmup_ratio: float = Field(0.0, ge=0.0, le=1.0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    max_norm: float = Field(1.0, ge=0.0, description="gradient clipping; 0: off")
    max_epochs: int = Field(1, ge=1, description="passes over each step's experience")
    num_episodes: int = Field(1, ge=1, description="passes over the prompt set")
    max_steps: int = Field(0, ge=0, description="0: until the episodes end")
    colocate_all: bool = False
    colocate_actor_ref: bool = False
    max_nonfinite_skips: int = Field(3, ge=1, description="stop after this many non-finite updates in a row")
    inject_nonfinite_at_steps: list[int] = Field(
        default_factory=list, description="fault injection: make the loss non-finite at these steps (tests)"
    )
    eval_steps: int = Field(0, ge=0, description="evaluate every k steps; 0: start and end only")
    cpus_per_worker: float = Field(1.0, gt=0.0)
    num_threads_per_worker: int = Field(0, ge=0, description="torch threads per Ray worker; 0: auto")


class DeepSpeedConfig(Section):
    zero_stage: Literal[0, 1, 2, 3] = 2
    adam_offload: bool = False
    gradient_checkpointing: bool = False
    bf16: bool = Field(False, description="bf16 on GPU; CPU runs use fp32")
    enable_sleep: bool = Field(
        False,
        description="colocated: offload DeepSpeed's parameters and optimizer states to host memory while the "
        "engines generate (OpenRLHF's --ds.enable_sleep)",
    )


class CheckpointConfig(Section):
    interval: int = Field(0, ge=0, description="save every k steps; 0: only at the end")
    keep: int = Field(2, ge=1)
    load_enable: bool = False
    path: str = Field("", description="empty: <output_dir>/ckpt")


class PlanConfig(Section):
    """The placement and memory planner (openrlhf/planner.py), run before any placement group."""

    model_size: str = Field(
        "", description="parameters of the policy, e.g. 7B or 135M; empty: counted from the checkpoint's config.json"
    )
    cluster: str = Field(
        "", description="NODESxGPUSxGB (e.g. 1x8x80) to plan for offline; empty: the Ray cluster's resources"
    )
    enforce: bool = Field(True, description="refuse a run whose plan does not fit before any worker starts")


class LoggerConfig(Section):
    jsonl: bool = True
    tensorboard_dir: str = ""
    wandb_project: str = ""
    wandb_run_name: str = ""
    progress_bar: bool = True


class SFTConfig(Section):
    epochs: int = Field(1, ge=1)
    learning_rate: float = Field(1e-4, gt=0.0)
    batch_size: int = Field(32, ge=1, description="samples per optimizer step")
    micro_batch_size: int = Field(8, ge=1)
    max_len: int = Field(512, ge=8, description="response tokens kept per sample")
    output_dir: str = ""


class DemoConfig(Section):
    """The embedded default pipeline: build tiny model, SFT warm start, eval, RL, eval."""

    enable: bool = False
    task: Literal["sums", "arithmetic", "shapes"] = Field(
        "sums", description="sums: chained single-digit sums (text); arithmetic: word problems; shapes: images"
    )
    work_dir: str = "outputs/demo"
    num_train: int = Field(2000, ge=1)
    num_heldout: int = Field(200, ge=1)
    difficulty: int = Field(1, ge=1, le=4, description="arithmetic difficulty level of the generated task")
    full_reasoning_prob: float = Field(0.4, ge=0.0, le=1.0, description="share of SFT targets with worked steps")
    image_size: int = Field(56, ge=24, description="shapes: side of the generated images in pixels")
    shape_kinds: list[Literal["counting", "exact", "choice", "rec"]] = Field(
        default_factory=lambda: ["counting", "exact", "choice", "rec"],
        min_length=1,
        description="shapes: question kinds, cycled in order (repeat a kind to weight it)",
    )
    teacher_bias: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="shapes: how often the SFT targets' simulated teacher answers blue for a shape of another "
        "colour (the rewarded answers stay true, so GRPO can correct the bias SFT copied)",
    )
    min_terms: int = Field(5, ge=2, description="sums: fewest terms in a generated sum")
    max_terms: int = Field(7, ge=2, description="sums: most terms in a generated sum")
    fact_share: float = Field(
        0.4, ge=0.0, lt=1.0, description="sums: share of SFT rows that are one-step facts (running total + digit)"
    )
    heldout_distinct: Literal["expression", "question"] = Field(
        "question", description="held-out rows never share this with training rows"
    )

    @model_validator(mode="after")
    def _check_terms(self) -> DemoConfig:
        if self.min_terms > self.max_terms:
            raise ValueError(f"demo.min_terms ({self.min_terms}) must not exceed demo.max_terms ({self.max_terms})")
        return self


class Config(Section):
    actor: ModelConfig = ModelConfig()
    ref: RefConfig = RefConfig()
    data: DataConfig = DataConfig()
    rollout: RolloutConfig = RolloutConfig()
    vllm: VllmConfig = VllmConfig()
    algo: AlgoConfig = AlgoConfig()
    reward: RewardConfig = RewardConfig()
    train: TrainConfig = TrainConfig()
    ds: DeepSpeedConfig = DeepSpeedConfig()
    ckpt: CheckpointConfig = CheckpointConfig()
    logger: LoggerConfig = LoggerConfig()
    sft: SFTConfig = SFTConfig()
    demo: DemoConfig = DemoConfig()
    plan: PlanConfig = PlanConfig()

    @model_validator(mode="after")
    def _check_cross_fields(self) -> Config:
        if self.reward.remote_url and self.reward.reward_func:
            raise ValueError("reward.remote_url and reward.reward_func are exclusive: set one")
        if self.ds.enable_sleep and self.ds.adam_offload:
            raise ValueError(
                "ds.enable_sleep with ds.adam_offload: the optimizer states already live in host memory and "
                "DeepSpeed cannot move offloaded states again; drop one of them"
            )
        if self.rollout.weight_sync == "ipc" and not self.train.colocate_all:
            raise ValueError(
                "rollout.weight_sync=ipc shares the policy's device memory with the engines: it needs "
                "train.colocate_all (engines on their own devices use broadcast or object_store)"
            )
        if self.actor.lora.rank > 0 and self.ds.zero_stage == 3:
            raise ValueError(
                "actor.lora.rank > 0 needs ds.zero_stage <= 2 (LoRA merging of ZeRO-3 shards is not supported)"
            )
        return self


# --------------------------------------------------------------------------- loading


def _describe_allowed(model: type[BaseModel], key: str) -> str:
    field = model.model_fields.get(key)
    if field is None:
        return ""
    choices = get_args(field.annotation)
    if choices and all(isinstance(c, (str, int)) for c in choices):
        return " (allowed: " + ", ".join(repr(c) for c in choices) + ")"
    return f" (expected {getattr(field.annotation, '__name__', field.annotation)})"


def _section_at(path: list[str]) -> type[BaseModel]:
    model: type[BaseModel] = Config
    for part in path:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return model


def _format_validation_error(err: ValidationError, values: dict[str, Any]) -> str:
    lines = []
    for item in err.errors():
        loc = [str(p) for p in item["loc"]]
        key = ".".join(loc)
        value: Any = values
        for part in loc:
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                value = None
        if item["type"] == "extra_forbidden":
            section = _section_at(loc[:-1])
            allowed = ", ".join(sorted(section.model_fields))
            prefix = ".".join(loc[:-1]) or "<top level>"
            lines.append(f"unknown config key '{key}' (allowed under {prefix}: {allowed})")
        elif item["type"] == "value_error" and (not loc or _section_at(loc) is not _section_at(loc[:-1])):
            # a section's own cross-field check: its message names the keys
            lines.append(item["msg"].removeprefix("Value error, "))
        else:
            hint = _describe_allowed(_section_at(loc[:-1]), loc[-1]) if loc else ""
            lines.append(f"bad value for '{key}': {value!r}: {item['msg']}{hint}")
    return "invalid config:\n  " + "\n  ".join(lines)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key '{dotted}': '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def _parse_scalar(text: str) -> Any:
    """Parse a command-line value as YAML (numbers, booleans, [lists]); plain text stays a string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """Turn ``--a.b value`` / ``--a.b=value`` / ``--flag`` (true) into a nested dict."""
    tree: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"unexpected argument {arg!r}: options look like --section.key value")
        key = arg[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
            value = _parse_scalar(raw)
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = _parse_scalar(argv[i + 1])
            i += 2
        else:
            value = True
            i += 1
        if "." not in key:
            raise ConfigError(
                f"option '--{key}' names no section; use --section.key (sections: {', '.join(Config.model_fields)})"
            )
        _set_dotted(tree, key, value)
    return tree


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def build_config(values: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(values)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, values)) from None


def load_config(argv: list[str] | None = None, default_config: str | None = None) -> tuple[Config, bool]:
    """Parse ``[--config FILE] [--print-config] [--a.b value ...]``; returns (config, print_requested).

    ``default_config`` is the YAML used when no ``--config`` is given (the embedded default of a CLI).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    config_path = default_config
    print_config = False
    rest: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--config":
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a YAML file path")
            config_path = argv[i + 1]
            i += 2
        elif argv[i].startswith("--config="):
            config_path = argv[i].split("=", 1)[1]
            i += 1
        elif argv[i] == "--print-config":
            print_config = True
            i += 1
        else:
            rest.append(argv[i])
            i += 1
    values = load_yaml(config_path) if config_path else {}
    values = _deep_merge(values, parse_overrides(rest))
    return build_config(values), print_config


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
