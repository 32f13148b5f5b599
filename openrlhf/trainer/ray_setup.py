"""Joining a Ray cluster (RAY_ADDRESS, as under `ray job submit`) or starting a local one."""

from __future__ import annotations

import os

# Environment variables the workers need to see as the driver does (a cluster started by `ray start`
# does not inherit the driver's environment).
PASSED_ENV = (
    "TORCH_EXTENSIONS_DIR",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TOKENIZERS_PARALLELISM",
    "OPENRLHF_FAULT_INJECTION",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
)


def worker_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # DeepSpeed's CPU accelerator reads these; keep intra-op threads bounded per worker.
    env.setdefault("OMP_NUM_THREADS", "1")
    # OpenMP threads that wait at a barrier sleep instead of spinning: on a machine whose cores the driver,
    # the reward server or another worker also use, a spinning thread holds a core the descheduled one needs
    # (bench/omp_wait_policy.py, SmolLM2 decode step beside one busy process: 227 ms spinning, 106 ms passive;
    # alone 120 / 113 ms). Set OMP_WAIT_POLICY or GOMP_SPINCOUNT to choose otherwise.
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def init_ray(num_cpus: int | None = None) -> bool:
    """Connect to RAY_ADDRESS when set, else start a local cluster; returns True if we started it.

    A local cluster is marked as this driver's, and leftovers of a killed earlier run end first
    (openrlhf/trainer/local_cluster.py)."""
    import ray

    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": worker_env()}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=runtime_env, log_to_driver=True)
        return False
    from openrlhf.trainer.local_cluster import end_leftovers_of_dead_runs, mark_session

    # What a killed run of ours left (Ray's agents outlive a SIGKILLed driver) goes first.
    end_leftovers_of_dead_runs()
    # Ray's CPUs are logical: declare at least what the placement groups ask for, even on 2 cores.
    num_cpus = max(num_cpus or 0, os.cpu_count() or 1)
    context = ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        runtime_env=runtime_env,
        log_to_driver=True,
        configure_logging=True,
        logging_level="WARNING",
    )
    session_dir = context.address_info.get("session_dir") if hasattr(context, "address_info") else None
    if session_dir:
        mark_session(session_dir)
    return True


def _policy_is_vision_model(cfg) -> bool:
    """Whether the policy checkpoint has a vision tower (what ``rollout.backend auto`` needs on CPUs); False when
    the backend is named or the checkpoint cannot be read yet (loading it later says why)."""
    from openrlhf.models.loading import is_vision_model

    if cfg.rollout.backend != "auto" or not cfg.actor.model_name_or_path:
        return False
    try:
        return is_vision_model(cfg.actor.model_name_or_path)
    except (OSError, ValueError):
        return False


def open_cluster(cfg, *, worker_mode: str | None = None):
    """Join the cluster the run's workers will use (or decide there is none) and resolve the run's layout once.

    RAY_ADDRESS set (``ray job submit``), or Ray already running in this process: join it first, so the
    backend is chosen from that cluster's GPUs, not the driver's. Otherwise the layout is resolved for this
    machine and a local Ray is started only when it says ``ray`` (it then has this machine's GPUs).
    ``worker_mode`` overrides ``train.worker_mode`` (the SFT runner always uses Ray actors).
    Returns (layout, whether this call started Ray).
    """
    import sys

    from openrlhf.plan.layout import resolve_layout
    from openrlhf.utils.vllm_builds import installed_vllm_build
    from openrlhf.workers.distributed import cluster_gpu_count

    if worker_mode is not None and worker_mode != cfg.train.worker_mode:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"worker_mode": worker_mode})})
    ray = sys.modules.get("ray")
    joins = bool(os.environ.get("RAY_ADDRESS")) or (ray is not None and ray.is_initialized())
    if joins:
        init_ray()
    build = installed_vllm_build()
    layout = resolve_layout(
        cfg,
        cluster_gpus=cluster_gpu_count(),
        vllm_build=build.name if build else None,
        joins_cluster=joins,
        vision_model=_policy_is_vision_model(cfg),
    )
    started = False
    if layout.worker_mode == "ray" and not joins:
        started = init_ray(num_cpus=layout.required_cpus)
    return layout, started
