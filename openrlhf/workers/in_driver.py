"""Workers as plain objects in the driver's own process, for a run that Ray would only slow down.

With one policy rank that generates with its own weights (``train.colocate_all``, HF engines, weight sync
``in_process``: the hybrid engine on one device) every phase of a step runs in that one worker, one after the
other; a Ray cluster adds only its start-up (``ray.init`` ~3-6 s here), a second process that imports torch,
DeepSpeed and transformers again (~9 s) and its shutdown. ``train.worker_mode`` (:func:`resolve_worker_mode`)
then builds the workers in the driver instead, called through :mod:`openrlhf.utils.actor_calls` as Ray actors are.
"""

from __future__ import annotations

import os
import sys

from openrlhf.config import ConfigError


def resolve_worker_mode(cfg, weight_sync: str) -> str:
    """``train.worker_mode`` -> "ray" | "in_driver", refusing an in-driver run that cannot be one.

    In the driver when the run is one worker: one policy rank (actor.num_nodes x num_gpus_per_node = 1) that
    is its own rollout engine (``weight_sync`` resolved to in_process), and a reference, if any, that is
    colocated with it. auto also needs no cluster to join: no RAY_ADDRESS (``ray job submit``) and no Ray
    already started in this process (a test's cluster); then the workers run in the driver.
    """
    mode = cfg.train.worker_mode
    if mode == "ray":
        return "ray"
    reasons = []
    if cfg.actor.num_nodes * cfg.actor.num_gpus_per_node != 1:
        reasons.append(
            f"the policy has {cfg.actor.num_nodes * cfg.actor.num_gpus_per_node} ranks (actor.num_nodes x "
            "actor.num_gpus_per_node must be 1)"
        )
    if weight_sync != "in_process":
        reasons.append(
            f"the weight sync resolves to {weight_sync}, not in_process (needs train.colocate_all, HF engines "
            "and ds.zero_stage below 3): the engines would be processes of their own"
        )
    if mode == "in_driver":
        if reasons:
            raise ConfigError("train.worker_mode=in_driver: " + "; ".join(reasons))
        return "in_driver"
    ray = sys.modules.get("ray")
    if reasons or os.environ.get("RAY_ADDRESS") or (ray is not None and ray.is_initialized()):
        return "ray"
    return "in_driver"
