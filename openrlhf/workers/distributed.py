"""Process-group setup for a DeepSpeed data-parallel group of Ray actors (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import logging
import os
import socket
from contextlib import closing


def free_port(host: str = "127.0.0.1") -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def node_ip() -> str:
    """The address other workers of the group reach this node at (loopback when Ray runs locally)."""
    try:
        import ray

        if ray.is_initialized():
            return ray.util.get_node_ip_address()
    except Exception:  # pragma: no cover - ray missing or not connected
        pass
    return "127.0.0.1"


def accelerator_available() -> bool:
    """CUDA in this process: what a worker (which runs on the node it computes on) asks."""
    import torch

    return torch.cuda.is_available()


def cluster_gpu_count() -> float:
    """GPUs of the Ray cluster this process is connected to; this process's CUDA devices without Ray.

    The driver asks this, not :func:`accelerator_available`: under ``ray job submit`` it usually runs on a
    head node without GPUs while the workers' nodes have them.
    """
    try:
        import ray

        if ray.is_initialized():
            return float(ray.cluster_resources().get("GPU", 0.0))
    except Exception:  # pragma: no cover - ray missing or not connected
        pass
    import torch

    return float(torch.cuda.device_count()) if torch.cuda.is_available() else 0.0


def init_process_group(rank: int, world_size: int, master_addr: str, master_port: int) -> None:
    """Initialise torch.distributed through DeepSpeed for one rank of a data-parallel group."""
    import deepspeed

    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": "0" if not accelerator_available() else os.environ.get("LOCAL_RANK", "0"),
            "WORLD_SIZE": str(world_size),
            "MASTER_ADDR": master_addr,
            "MASTER_PORT": str(master_port),
        }
    )
    backend = "nccl" if accelerator_available() else "gloo"
    if backend == "gloo":  # DeepSpeed builds its shared-memory op here on CPUs (once per extensions folder)
        clear_stale_build_lock("deepspeed_shm_comm")
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)


STALE_BUILD_LOCK_S = 900.0  # the op compiles in about 45 s on 2 cores; a lock this old was left by a killed build


def clear_stale_build_lock(extension: str, max_age_s: float = STALE_BUILD_LOCK_S) -> bool:
    """Remove torch's build lock of ``extension`` when it is older than ``max_age_s``: a process killed while it
    compiled leaves the lock behind, and every later process would wait on it forever (torch's FileBaton has no
    timeout). Returns whether a lock was removed (and says so on the log)."""
    import time
    from pathlib import Path

    try:
        from torch.utils.cpp_extension import _get_build_directory

        lock = Path(_get_build_directory(extension, verbose=False)) / "lock"
        age = time.time() - lock.stat().st_mtime
    except (ImportError, OSError):
        return False
    if age <= max_age_s:
        return False
    logging.getLogger(__name__).warning(
        "removing %s: a build lock left %.0f s ago by a process that did not finish compiling %s", lock, age, extension
    )
    lock.unlink(missing_ok=True)
    return True
