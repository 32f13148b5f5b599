"""Workers as plain objects in the driver's own process, for a run that Ray would only slow down.

With one policy rank that generates with its own weights (``train.colocate_all``, HF engines, weight sync
``in_process``: the hybrid engine on one device) every phase of a step runs in that one worker, one after the
other; a Ray cluster adds only its start-up (``ray.init`` ~3-6 s here), a second process that imports torch,
DeepSpeed and transformers again (~9 s) and its shutdown. ``train.worker_mode`` (:func:`resolve_worker_mode`)
then builds the workers in the driver instead; the driver's code does not change, because an
:class:`InDriverHandle` answers ``handle.method.remote(*args)`` as a Ray actor handle does, and
:func:`wait_for` takes its results as ``ray.get`` takes object refs.

Like Ray, a call gets copies of its arguments and the caller a copy of the result (``copy.deepcopy`` in place
of Ray's serialisation), so a worker that edits an argument in place behaves the same in both modes. Calls run
when ``.remote`` is called, one at a time in the calling thread, and an exception is raised from
:func:`wait_for`, where Ray raises it. Generator methods (an engine's ``generate_stream``) are read through
:func:`stream_calls` in both modes: Ray streaming generator tasks, or the generator itself in this thread.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any


class InDriverResult:
    """What ``handle.method.remote(...)`` returns in the driver: the call's outcome, like a Ray object ref."""

    __slots__ = ("_value", "_error")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value = value
        self._error = error

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return copy.deepcopy(self._value)


class _InDriverMethod:
    __slots__ = ("_bound",)

    def __init__(self, bound) -> None:
        self._bound = bound

    def remote(self, *args: Any, **kwargs: Any) -> InDriverResult:
        args, kwargs = copy.deepcopy((args, kwargs))
        try:
            return InDriverResult(self._bound(*args, **kwargs))
        except Exception as exc:  # raised where the caller waits, as ray.get does
            return InDriverResult(error=exc)

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """A generator method's items, each a copy (what a Ray streaming call's refs hold); runs as it is read."""
        args, kwargs = copy.deepcopy((args, kwargs))
        for item in self._bound(*args, **kwargs):
            yield copy.deepcopy(item)


class InDriverHandle:
    """A worker object in this process, called like a Ray actor handle (``handle.method.remote(...)``)."""

    def __init__(self, instance: Any) -> None:
        self._instance = instance

    def __getattr__(self, name: str) -> _InDriverMethod:
        instance = self.__dict__.get("_instance")
        if instance is None:
            raise RuntimeError(f"the in-driver worker was shut down; cannot call {name!r}")
        return _InDriverMethod(getattr(instance, name))

    def close(self) -> None:
        """Drop the worker (its model and optimizer are freed with it)."""
        self._instance = None


def wait_for(refs: list) -> list:
    """The results of ``refs``: in-driver results directly, Ray object refs through ``ray.get``."""
    if refs and all(isinstance(r, InDriverResult) for r in refs):
        return [r.result() for r in refs]
    import ray

    return ray.get(refs)


def stream_calls(calls: Sequence[tuple[Any, str, tuple]]) -> Iterator[tuple[int, Any]]:
    """``(call index, item)`` for each item the generator methods ``handle.method(*args)`` of ``calls`` yield,
    as the items arrive.

    Ray actor handles: streaming generator tasks (``.options(num_returns="streaming")``), all started at once;
    items are taken from whichever call has one ready (``ray.wait`` on the generators). In-driver handles: the
    generators run one after another in this thread as they are read. Errors are raised where the caller reads.
    """
    if all(is_in_driver(handle) for handle, _, _ in calls):
        for index, (handle, method, args) in enumerate(calls):
            for item in getattr(handle, method).stream(*args):
                yield index, item
        return
    import ray

    pending = {
        getattr(handle, method).options(num_returns="streaming").remote(*args): index
        for index, (handle, method, args) in enumerate(calls)
    }
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for generator in ready:
            try:
                ref = next(generator)
            except StopIteration:
                del pending[generator]
                continue
            yield pending[generator], ray.get(ref)


def is_in_driver(handle: Any) -> bool:
    return isinstance(handle, InDriverHandle)


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
            raise ValueError("train.worker_mode=in_driver: " + "; ".join(reasons))
        return "in_driver"
    ray = sys.modules.get("ray")
    if reasons or os.environ.get("RAY_ADDRESS") or (ray is not None and ray.is_initialized()):
        return "ray"
    return "in_driver"
