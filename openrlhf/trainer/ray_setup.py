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
