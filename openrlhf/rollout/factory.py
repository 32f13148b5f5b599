"""Creating the rollout engines a run asks for: Ray actors of the HF or the vLLM engine."""

from __future__ import annotations

from typing import Any

from openrlhf.config import Config, ConfigError
from openrlhf.plan.layout import RunLayout


def max_model_len(cfg: Config) -> int:
    """vllm.max_model_len, or prompt_max_len + max_new_tokens when 0."""
    return cfg.vllm.max_model_len or cfg.data.prompt_max_len + cfg.rollout.max_new_tokens


def _strategy(placement_group: Any, bundle_index: int | None) -> Any:
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if placement_group is None:
        return None
    return PlacementGroupSchedulingStrategy(
        placement_group=placement_group,
        placement_group_bundle_index=-1 if bundle_index is None else bundle_index,
        placement_group_capture_child_tasks=True,
    )


def engine_bundles(num_engines: int, bundles_per_engine: int, bundle_indices: list[int] | None) -> list[list[int]]:
    """The bundle indices of each engine: consecutive runs of ``bundles_per_engine`` (TP size) bundles."""
    needed = num_engines * bundles_per_engine
    indices = list(range(needed)) if bundle_indices is None else [int(i) for i in bundle_indices]
    if len(indices) != needed:
        raise ValueError(
            f"{num_engines} rollout engine(s) x {bundles_per_engine} bundle(s) need {needed} bundle indices, "
            f"got {len(indices)}: {indices}"
        )
    return [indices[i * bundles_per_engine : (i + 1) * bundles_per_engine] for i in range(num_engines)]


def create_rollout_engines(
    cfg: Config,
    layout: RunLayout,
    placement_group: Any = None,
    bundle_indices: list[int] | None = None,
    *,
    share: int = 1,
) -> list[Any]:
    """``vllm.num_engines`` engine actors of the layout's backend, in ``placement_group`` when given.

    Engine i takes bundle ``bundle_indices[i]`` (HF) or the i-th run of ``tensor_parallel_size`` bundles
    (vLLM). ``share`` > 1 when the engines sit in bundles with other actors (colocated): each engine then
    asks for 1/share of a bundle's CPUs/GPUs.
    """
    if not cfg.actor.model_name_or_path:
        raise ConfigError("actor.model_name_or_path is empty: the rollout engines need a checkpoint")
    if layout.backend == "hf":
        return _create_hf_engines(cfg, layout.gpus_per_bundle, placement_group, bundle_indices, share)
    return _create_vllm_engines(cfg, layout.gpus_per_bundle, placement_group, bundle_indices, share)


def _create_hf_engines(
    cfg: Config, gpus: float, placement_group: Any, bundle_indices: list[int] | None, share: int
) -> list[Any]:
    from openrlhf.rollout.hf_engine import engine_kwargs, hf_rollout_actor_class

    actor_cls = hf_rollout_actor_class()
    bundles = engine_bundles(cfg.vllm.num_engines, 1, bundle_indices) if placement_group is not None else None
    engines = []
    for i in range(cfg.vllm.num_engines):
        options: dict[str, Any] = {"num_cpus": cfg.train.cpus_per_worker / share, "num_gpus": gpus / share}
        if bundles is not None:
            options["scheduling_strategy"] = _strategy(placement_group, bundles[i][0])
        options.update(_partial_rollout_options(cfg))
        engines.append(
            actor_cls.options(**options).remote(
                cfg.actor.model_name_or_path,
                dtype=cfg.actor.dtype,
                num_threads=cfg.train.num_threads_per_worker,
                # every engine computes at once, on one node or spread over several (the value
                # openrlhf.workers.placement.ranks_per_node(n, n) gives on any cluster)
                engines_on_node=max(1, cfg.vllm.num_engines),
                seed=cfg.train.seed + i,
                **engine_kwargs(cfg),
            )
        )
    return engines


def _create_vllm_engines(
    cfg: Config, gpus: float, placement_group: Any, bundle_indices: list[int] | None, share: int
) -> list[Any]:
    """vLLM engine actors. On GPUs an engine holds its GPU (TP 1) or vLLM's Ray workers take its bundles' GPUs
    (TP > 1). On CPUs (vLLM's CPU build) the actor takes its first bundle's CPUs and runs its TP workers as
    processes of its own, bound to ``vllm.cpu_threads`` cores (0: the node's)."""
    import ray
    from ray.util.placement_group import placement_group as make_placement_group

    from openrlhf.rollout.vllm_engine import VLLMRolloutEngine

    tp = cfg.vllm.tensor_parallel_size
    if placement_group is None:
        bundle = {"GPU": 1, "CPU": 1} if gpus else {"CPU": cfg.train.cpus_per_worker}
        placement_group = make_placement_group([bundle] * (cfg.vllm.num_engines * tp), strategy="PACK")
        ray.get(placement_group.ready())
    bundles = engine_bundles(cfg.vllm.num_engines, tp, bundle_indices)
    actor_cls = ray.remote(VLLMRolloutEngine)
    gpu_share = 1.0 / share
    engines = []
    for i in range(cfg.vllm.num_engines):
        # TP = 1: the engine actor holds the GPU; TP > 1: vLLM's Ray workers take the bundles' GPUs.
        num_gpus = gpu_share if tp == 1 and gpus else 0
        engines.append(
            actor_cls.options(
                num_cpus=0 if gpus else cfg.train.cpus_per_worker / share,
                num_gpus=num_gpus,
                scheduling_strategy=_strategy(placement_group, bundles[i][0]),
                **_partial_rollout_options(cfg),
            ).remote(
                cfg.actor.model_name_or_path,
                tensor_parallel_size=tp,
                gpu_memory_utilization=cfg.vllm.gpu_memory_utilization,
                enable_sleep=cfg.vllm.enable_sleep,
                enable_prefix_caching=cfg.vllm.enable_prefix_caching,
                enforce_eager=cfg.vllm.enforce_eager,
                max_model_len=max_model_len(cfg),
                dtype=cfg.actor.dtype,
                seed=cfg.train.seed + i,
                min_pixels=cfg.data.min_pixels,
                max_pixels=cfg.data.max_pixels,
                max_images_per_prompt=cfg.data.max_images_per_prompt or 8,
                bundle_indices=bundles[i] if tp > 1 else None,
                gpus_per_worker=gpu_share,
                trust_remote_code=cfg.actor.trust_remote_code,
                cpu_kvcache_space_gb=cfg.vllm.cpu_kvcache_space_gb,
                cpu_threads=cfg.vllm.cpu_threads,
            )
        )
    return engines


def _partial_rollout_options(cfg: Config) -> dict[str, Any]:
    """Partial rollouts: a weight update arrives while generate_stream runs, so the actor takes two calls at once
    (the update is handed to the generating thread: openrlhf/rollout/weight_switch.py)."""
    return {"max_concurrency": 2} if cfg.train.partial_rollout_enable else {}
