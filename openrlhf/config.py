"""The typed config tree: the one place where defaults and validation live.

Load order: the pydantic defaults below, then a YAML file (``--config configs/x.yaml``), then dotted
command-line overrides in OpenRLHF's style (``--actor.model_name_or_path PATH --vllm.num_engines 4
--algo.advantage.estimator group_norm --train.colocate_all``). An unknown key or a bad value fails at
start with a :class:`ConfigError` naming the key, the value and what is allowed.

This module is the tree alone and imports nothing of the project above openrlhf/utils/: the loading machinery
(command-line and YAML parsing, OpenRLHF's flag names, error messages: :func:`~openrlhf.config_loading.load_config`,
:func:`~openrlhf.config_loading.build_config`, :func:`~openrlhf.config_loading.parse_overrides`, ...) lives in
openrlhf/config_loading.py, which builds on this module, and ``--help`` text is generated from the tree by
openrlhf/config_help.py. :func:`dump_config` (the tree as YAML) and :func:`eval_metric_name` (the eval metric
``ckpt.best_metric_key`` names) live here.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from openrlhf.config_algo import (  # noqa: F401  (the tree's algo section, re-exported)
    GROUP_ESTIMATORS,
    PRESET_ESTIMATORS,
    AdvantageConfig,
    AdvantageFilterConfig,
    AlgoConfig,
    ClipConfig,
    DynamicFilterConfig,
    KLConfig,
    PreClipConfig,
)
from openrlhf.config_base import ConfigError, Section  # noqa: F401

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
    few_shot: list[dict[str, str]] = Field(
        default_factory=list,
        description="example turns before every prompt's messages: [{role: user, content: ...}, {role: assistant, "
        "content: ...}, ...]",
    )
    task_suffix: str = ""
    prompt_max_len: int = Field(1024, ge=1)
    min_pixels: int = Field(3136, ge=1)
    max_pixels: int = Field(12845056, ge=1)
    max_images_per_prompt: int = Field(
        0, ge=0, description="rows with more images are invalid (data.on_invalid); vLLM's image limit; 0: 8"
    )
    shuffle: bool = True

    @field_validator("few_shot")
    @classmethod
    def _check_few_shot(cls, turns: list[dict[str, str]]) -> list[dict[str, str]]:
        for i, turn in enumerate(turns):
            if set(turn) != {"role", "content"} or turn["role"] not in ("user", "assistant"):
                raise ValueError(f"data.few_shot[{i}]: give {{role: user|assistant, content: TEXT}}, got {turn}")
        if turns and (turns[0]["role"] != "user" or turns[-1]["role"] != "assistant"):
            raise ValueError("data.few_shot: the example turns start with a user turn and end with an assistant turn")
        return turns

    @field_validator("sampling_strategy")
    @classmethod
    def _check_strategy(cls, value: str) -> str:
        from openrlhf.data.sampling import parse_sampling_strategy

        parse_sampling_strategy(value)
        return value


# --------------------------------------------------------------------------- rollout


class RolloutConfig(Section):
    backend: Literal["auto", "hf", "vllm"] = Field(
        "auto", description="auto: vLLM with GPUs; on CPUs vLLM's CPU build for a long text-model run; else hf"
    )
    n_samples_per_prompt: int = Field(4, ge=1, le=16384, description="samples per prompt (vLLM's limit: 16384)")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0: greedy; vLLM refuses above 2")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(-1, ge=-1, description="-1: off")
    max_new_tokens: int = Field(64, ge=1)
    generate_batch_size: int = Field(64, ge=1, description="HF engine: sequences per generate call")
    tools: list[Literal["calculator", "python", "crop"]] = Field(
        default_factory=list,
        description="multi-turn rollouts with these built-in tools, called as <tool_call>{json}</tool_call> "
        "(openrlhf/rollout/tool_agent.py); the run's reward source scores the final answer",
    )
    max_turns: int = Field(4, ge=1, description="rollout.tools: turns per episode (the last one is not answered)")
    max_tokens_per_gpu: int = Field(
        0, ge=0, description="train.dynamic_batch_enable: tokens per log-prob micro-batch; 0: train.max_tokens_per_gpu"
    )
    weight_sync: Literal["auto", "in_process", "ipc", "object_store", "broadcast"] = Field(
        "auto",
        description="policy -> engines: in_process (colocated HF engines: the policy ranks generate with their own "
        "weights, nothing is copied), ipc (colocated: each policy rank shares a buffer on its own device, CUDA "
        "IPC or shared memory), broadcast (torch.distributed group, parameter by parameter; NCCL for vLLM, gloo "
        "on CPU) or the Ray object store; auto: in_process with train.colocate_all and HF (ZeRO-0..2), ipc with "
        "train.colocate_all otherwise, else broadcast for vLLM and the object store for HF",
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
    cpu_kvcache_space_gb: int = Field(
        1, ge=1, description="vLLM's CPU build: KV-cache size per engine in GiB (VLLM_CPU_KVCACHE_SPACE)"
    )
    cpu_threads: int = Field(
        0,
        ge=0,
        description="vLLM's CPU build: cores each engine binds its threads to (VLLM_CPU_OMP_THREADS_BIND, split "
        "over its tensor-parallel workers); 0: the node's cores over the engines on it",
    )


# --------------------------------------------------------------------------- reward


class RewardConfig(Section):
    remote_url: list[str] = Field(
        default_factory=list,
        description="reward servers (a list, one URL, or OpenRLHF's comma-separated URLs); batches are sharded. "
        "One .py file instead: a reward function file, as in OpenRLHF (moved to reward.reward_func)",
    )
    reward_func: str = Field("", description="a .py file defining reward_func(queries, prompts, labels, **kw)")
    launch_local_server: bool = Field(False, description="start the reward server on a free loopback port")
    server_config: str = Field("", description="recipes YAML for the locally launched server")
    timeout: float = Field(60.0, gt=0.0)
    retries: int = Field(3, ge=0)
    backoff: float = Field(0.5, ge=0.0, description="seconds, doubled after each failed try")
    concurrency: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=1, description="samples per HTTP request")
    token_env: str = Field("", description="environment variable holding a bearer token")
    replica_cooldown_s: float = Field(
        30.0,
        gt=0.0,
        description="with several reward.remote_url servers: one that failed gets no requests for this long "
        "(its share goes to the others), then it is tried again",
    )
    busy_wait: float = Field(
        600.0,
        ge=0.0,
        description="seconds per request spent waiting out a busy server's 503 + Retry-After (back-pressure; "
        "not counted as a failed try)",
    )
    stop_properly_penalty_coef: float | None = Field(
        None,
        description="responses cut at max_new_tokens: c in [0, 1] scales their reward by c, c < 0 replaces it "
        "with c; empty: off",
    )

    @field_validator("remote_url", mode="before")
    @classmethod
    def _split_remote_url(cls, value: Any) -> Any:
        """``"URL"`` and OpenRLHF's ``"URL1,URL2"`` become lists; list entries are stripped, empties dropped."""
        if value is None:
            return []
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return [v.strip() for v in value if v.strip()]
        return value

    @model_validator(mode="after")
    def _reward_func_from_remote_url(self) -> RewardConfig:
        """OpenRLHF passes a reward function file as ``--reward.remote_url my_reward.py``: it becomes
        ``reward_func`` (so ``remote_url`` holds only servers); a .py mixed with URLs is refused."""

        def is_file(entry: str) -> bool:
            return entry.endswith(".py") and not entry.lower().startswith(("http://", "https://"))

        files = [entry for entry in self.remote_url if is_file(entry)]
        if not files:
            return self
        if len(self.remote_url) > 1:
            raise ValueError(
                f"reward.remote_url: {self.remote_url} mixes a reward function file with reward servers "
                "(or names several files): give one .py file, or http(s) URLs"
            )
        if self.reward_func and self.reward_func != files[0]:
            raise ValueError(
                f"reward.remote_url names the reward function file {files[0]!r} and reward.reward_func "
                f"names {self.reward_func!r}: set one"
            )
        # Set directly: assigning would run this check again (validate_assignment).
        self.__dict__["reward_func"] = files[0]
        self.__dict__["remote_url"] = []
        return self

    @model_validator(mode="after")
    def _check_server_urls(self) -> RewardConfig:
        """Every reward server is an http(s) URL with a host and a valid port."""
        from urllib.parse import urlsplit

        for url in self.remote_url:
            parts = urlsplit(url)
            try:
                parts.port  # noqa: B018 - raises ValueError for a port out of range
            except ValueError:
                parts = parts._replace(scheme="")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"reward.remote_url: {url!r} is not an http(s) URL (http://HOST:PORT/get_reward)")
        return self


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
    dynamic_batch_enable: bool = Field(
        False, description="micro-batches by token budget (max_tokens_per_gpu) instead of a number of rows"
    )
    max_tokens_per_gpu: int = Field(
        16192, ge=1, description="dynamic_batch_enable: tokens per training micro-batch (padded, or packed)"
    )
    recompute_old_logprobs: bool = Field(
        False,
        description="score old log-probs in their own forward even when the update is exactly on-policy "
        "(one epoch, one optimizer step per rollout); otherwise they are the training forward's, detached",
    )
    num_episodes: int = Field(1, ge=1, description="passes over the prompt set")
    max_steps: int = Field(0, ge=0, description="0: until the episodes end")
    colocate_all: bool = False
    colocate_actor_ref: bool = False
    async_enable: bool = Field(
        False,
        description="generate the batches of the next max_staleness steps while the policy trains on this one "
        "(engines on their own bundles; refused with colocate_all)",
    )
    max_staleness: int = Field(
        1, ge=1, description="async: batch b is generated by the policy of version max(0, b - K), K this value"
    )
    partial_rollout_enable: bool = Field(
        False,
        description="async: push new weights as soon as the policy has trained, into a generation in progress "
        "(its responses go on with the new weights; each records where it switched)",
    )
    worker_mode: Literal["auto", "ray", "in_driver"] = Field(
        "auto",
        description="where the workers run: ray (actors in their own processes) or in_driver (objects in the "
        "driver's process, no Ray started); in_driver needs one policy rank that generates itself "
        "(colocate_all, in_process weight sync); auto: in_driver then, unless RAY_ADDRESS is set or Ray runs",
    )
    max_nonfinite_skips: int = Field(3, ge=1, description="stop after this many non-finite updates in a row")
    max_restarts: int = Field(
        3,
        ge=0,
        description="when an engine, a worker or a node is lost, place the workers again and go on from the last "
        "checkpoint, at most this many times per run; 0: stop at the first loss (with the resume command)",
    )
    call_timeout_s_min: float = Field(
        600.0,
        gt=0.0,
        description="a call to workers or engines that answers after max(this, 10x the longest step so far) "
        "seconds counts as a lost part (twice this before the first step)",
    )
    eval_steps: int = Field(0, ge=0, description="evaluate every k steps; 0: start and end only")
    agent_func_path: str = Field(
        "",
        description="an OpenRLHF agent file (AgentExecutor over AgentInstanceBase): multi-turn rollouts, the "
        "environment's step() gives the rewards (no reward.* source); see openrlhf/rollout/agent_rollout.py",
    )
    cpus_per_worker: float = Field(1.0, gt=0.0)
    num_threads_per_worker: int = Field(0, ge=0, description="torch threads per Ray worker; 0: auto")


class DeepSpeedConfig(Section):
    zero_stage: Literal[0, 1, 2, 3] = 2
    adam_offload: bool = False
    gradient_checkpointing: bool = False
    bf16: bool = Field(False, description="bf16 on GPU; CPU runs use fp32")
    packing_samples: bool = Field(
        False,
        description="padding-free micro-batches: rows packed into one sequence with per-sample position ids "
        "(text rows; rows with images keep the padded forward)",
    )
    enable_sleep: bool = Field(
        False,
        description="colocated: offload DeepSpeed's parameters and optimizer states to host memory while the "
        "engines generate (OpenRLHF's --ds.enable_sleep)",
    )


_OPENRLHF_EVAL_KEY = re.compile(r"eval_(?P<source>.+)_(?P<metric>pass\d+)")
DEFAULT_BEST_METRIC = "eval/pass1"


def eval_metric_name(key: str) -> str | None:
    """The eval metric ``ckpt.best_metric_key`` names: None for ``none`` (off), ``eval/pass1`` for the empty
    string (OpenRLHF: the first pass1 metric), OpenRLHF's ``eval_default_pass{k}`` as ``eval/pass{k}``, an
    ``eval/...`` name as it is. Anything else is a ValueError naming the accepted forms."""
    if key == "none":
        return None
    if key == "":
        return DEFAULT_BEST_METRIC
    if key.startswith("eval/") and len(key) > len("eval/"):
        return key
    match = _OPENRLHF_EVAL_KEY.fullmatch(key)
    if match and match["source"] == "default":
        return f"eval/{match['metric']}"
    if match:
        raise ValueError(
            f"{key!r}: evaluation here has one data source (OpenRLHF's 'default'); use eval_default_{match['metric']} "
            f"or eval/{match['metric']}"
        )
    raise ValueError(
        f"{key!r} is not an eval metric name: use eval/pass1, eval/pass<n>, eval/accuracy, eval/reward, "
        "eval/<reward component>, OpenRLHF's eval_default_pass<n>, '' (eval/pass1) or none (off)"
    )


class CheckpointConfig(Section):
    interval: int = Field(0, ge=0, description="save every k steps; 0: only at the end")
    keep: int = Field(2, ge=1)
    load_enable: bool = False
    path: str = Field("", description="empty: <output_dir>/ckpt")
    save_hf: bool = Field(False, description="each checkpoint also holds the policy in Hugging Face format (hf/)")
    async_save: bool = Field(
        False,
        description="the checkpoints every ckpt.interval steps are written while the run goes on (the next "
        "step's generation runs during the write; the final checkpoint is written in the foreground)",
    )
    best_metric_key: str = Field(
        "none",
        description="export the policy to <output_dir>/best_model whenever this eval metric (e.g. eval/pass1, "
        "or OpenRLHF's eval_default_pass1) beats its best; empty: eval/pass1; none: off",
    )

    @field_validator("best_metric_key")
    @classmethod
    def _check_best_metric_key(cls, value: str) -> str:
        eval_metric_name(value)
        return value


class EvalConfig(Section):
    """How held-out prompts are answered (data.eval_paths, every train.eval_steps)."""

    temperature: float | None = Field(
        None,
        ge=0.0,
        le=2.0,
        description="0: greedy; empty: greedy with one answer per prompt, else 0.6 (OpenRLHF's default)",
    )
    n_samples_per_prompt: int = Field(
        1, ge=1, description="answers per prompt: eval/pass1 is their mean correctness, eval/passN any-correct"
    )

    @property
    def sampling_temperature(self) -> float:
        """The temperature evaluation samples at (the rule of ``temperature``'s description)."""
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.n_samples_per_prompt == 1 else 0.6

    @model_validator(mode="after")
    def _check_sampling(self) -> EvalConfig:
        if self.n_samples_per_prompt > 1 and self.temperature == 0:
            raise ValueError(
                f"eval.n_samples_per_prompt={self.n_samples_per_prompt} with eval.temperature=0: greedy decoding "
                "gives n identical answers; set a temperature > 0 (OpenRLHF's default is 0.6)"
            )
        return self


class PlanConfig(Section):
    """The placement and memory planner (openrlhf/plan/), run before any placement group."""

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
    task: Literal["sums", "arithmetic", "products", "shapes", "preference"] = Field(
        "sums",
        description="sums: chained single-digit sums (text); arithmetic: word problems; products: 3-digit "
        "products for the calculator tool (full_reasoning_prob: share of SFT targets that call it); shapes: images; "
        "preference: train the tiny VLM as a generative reward model on image pairs (R1-Reward)",
    )
    work_dir: str = "outputs/demo"
    model: Literal["tiny", "smollm2-135m-instruct"] = Field(
        "tiny",
        description="tiny: a tiny model built offline; smollm2-135m-instruct: the real pretrained model, fetched "
        "and converted once into work_dir (openrlhf-models get)",
    )
    sft: bool = Field(True, description="SFT warm start on the generated targets before GRPO (off for a real model)")
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
        "colour (the rewarded answers stay true, so GRPO can correct the bias SFT copied); preference: how often "
        "it takes Response 1 without looking (a position bias)",
    )
    voting: int = Field(5, ge=1, description="preference: K of the held-out Voting@K before and after RL")
    judge_num_train: int = Field(
        1000, ge=20, description="preference: SFT examples of the tiny consistency judge served by openrlhf-serve"
    )
    judge_epochs: int = Field(3, ge=1, description="preference: SFT epochs of the consistency judge")
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
        if self.model != "tiny" and self.task in ("shapes", "preference"):
            raise ValueError(f"demo.model {self.model!r} is a text model: use demo.task sums or arithmetic")
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
    eval: EvalConfig = EvalConfig()
    logger: LoggerConfig = LoggerConfig()
    sft: SFTConfig = SFTConfig()
    demo: DemoConfig = DemoConfig()
    plan: PlanConfig = PlanConfig()

    @model_validator(mode="after")
    def _check_cross_fields(self) -> Config:
        if self.reward.remote_url and self.reward.reward_func:
            raise ValueError("reward.remote_url and reward.reward_func are exclusive: set one")
        if self.reward.launch_local_server and (self.reward.remote_url or self.reward.reward_func):
            other = "reward.reward_func" if self.reward.reward_func else "reward.remote_url"
            raise ValueError(
                f"reward.launch_local_server with {other}: the launched server is the reward source, so "
                f"{other} must be empty; set one of them"
            )
        if self.train.agent_func_path and self.rollout.tools:
            raise ValueError(
                "train.agent_func_path with rollout.tools: the agent file's environment answers the turns; "
                "set one of them"
            )
        if self.train.agent_func_path and (
            self.reward.remote_url or self.reward.reward_func or self.reward.launch_local_server
        ):
            raise ValueError(
                "train.agent_func_path: the agent's step() gives the rewards, so reward.remote_url, "
                "reward.reward_func and reward.launch_local_server must be unset"
            )
        if self.algo.dynamic_filter.enable and self.rollout.n_samples_per_prompt < 2:
            raise ValueError(
                "algo.dynamic_filter.enable drops prompts whose responses all score alike: it needs "
                f"rollout.n_samples_per_prompt >= 2, got {self.rollout.n_samples_per_prompt}"
            )
        if self.ds.enable_sleep and self.ds.adam_offload:
            raise ValueError(
                "ds.enable_sleep with ds.adam_offload: the optimizer states already live in host memory and "
                "DeepSpeed cannot move offloaded states again; drop one of them"
            )
        if self.rollout.weight_sync in ("ipc", "in_process") and not self.train.colocate_all:
            raise ValueError(
                f"rollout.weight_sync={self.rollout.weight_sync} shares the policy's device memory with the engines: "
                "it needs train.colocate_all (engines on their own devices use broadcast or object_store)"
            )
        if self.rollout.weight_sync == "in_process" and (self.rollout.backend == "vllm" or self.ds.zero_stage == 3):
            raise ValueError(
                "rollout.weight_sync=in_process: the policy ranks generate with Hugging Face generate on their own "
                "full weights; it needs rollout.backend hf (or auto without GPUs) and ds.zero_stage <= 2"
            )
        if self.train.partial_rollout_enable and not self.train.async_enable:
            raise ValueError(
                "train.partial_rollout_enable lets weight updates land in a generation running beside training: "
                "it needs train.async_enable"
            )
        coef = self.reward.stop_properly_penalty_coef
        if coef is not None and coef > 1:
            raise ValueError(
                f"reward.stop_properly_penalty_coef={coef}: in [0, 1] it scales a cut response's reward, below 0 "
                "it replaces it; above 1 would reward being cut"
            )
        if self.actor.lora.rank > 0 and self.ds.zero_stage == 3:
            raise ValueError(
                "actor.lora.rank > 0 needs ds.zero_stage <= 2 (LoRA merging of ZeRO-3 shards is not supported)"
            )
        return self

    @model_validator(mode="after")
    def _check_run_conflicts(self) -> Config:
        """Settings a run would refuse once it starts, refused here so --print-config, --plan and the run agree."""
        estimator = self.algo.advantage.estimator
        if "estimator" not in self.algo.advantage.model_fields_set:
            estimator = PRESET_ESTIMATORS.get(self.algo.name, estimator)
        if estimator in GROUP_ESTIMATORS and self.rollout.n_samples_per_prompt < 2:
            raise ValueError(
                f"algo.advantage.estimator={estimator} (algo.name {self.algo.name}) compares the responses to a "
                f"prompt with each other: it needs rollout.n_samples_per_prompt >= 2, got "
                f"{self.rollout.n_samples_per_prompt}; use algo.advantage.estimator reinforce for one response per prompt"
            )
        if self.train.async_enable and self.train.colocate_all:
            raise ValueError(
                "train.async_enable with train.colocate_all: the engines and the policy share devices and take "
                "turns, so there is nothing to overlap; give the engines their own bundles (train.colocate_all "
                "false; train.colocate_actor_ref still puts the reference on the policy's bundles)"
            )
        if self.rollout.weight_sync == "broadcast" and self.train.colocate_all and self.rollout.backend == "vllm":
            raise ValueError(
                "rollout.weight_sync=broadcast with train.colocate_all and vLLM: policy rank 0 and engine 0 share a "
                "GPU and NCCL refuses two ranks on one device; use rollout.weight_sync=ipc (or auto)"
            )
        if self.ckpt.best_metric_key != "none" and not self.data.eval_paths and not self.demo.enable:
            raise ValueError(
                f"ckpt.best_metric_key={self.ckpt.best_metric_key!r} picks the best model by evaluation, but there "
                "is no eval data: set data.eval_paths (--eval.dataset) or ckpt.best_metric_key none"
            )
        return self


def dump_config(cfg: Config) -> str:
    """The tree as YAML, every key with its value (what ``--print-config`` prints and a run saves)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
