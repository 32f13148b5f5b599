"""How many torch threads one process of a run computes with."""

from __future__ import annotations

import os


def set_num_threads(num_threads: int, workers_on_node: int) -> int:
    """torch intra-op threads of one worker: ``num_threads``, or (0) its share of the node's cores.

    ``workers_on_node``: the processes of this role that compute *at the same time* on this node (the
    data-parallel ranks there, or the rollout engines there). Roles colocated on a bundle take turns in a
    synchronous step, so each phase gets every core the others leave idle.
    """
    import torch

    if num_threads <= 0:
        num_threads = max(1, (os.cpu_count() or 1) // max(1, workers_on_node))
    torch.set_num_threads(num_threads)
    return num_threads
