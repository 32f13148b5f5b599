"""Calling workers the same way whether they are Ray actors or plain objects in the driver's own process.

A run that Ray would only slow down (one policy rank that generates with its own weights: the hybrid engine on
one device, see ``train.worker_mode``) builds its workers in the driver; the driver's code does not change,
because an :class:`InDriverHandle` answers ``handle.method.remote(*args)`` as a Ray actor handle does, and
:func:`wait_for` takes its results as ``ray.get`` takes object refs.

Like Ray, a call gets copies of its arguments and the caller a copy of the result (``copy.deepcopy`` in place
of Ray's serialisation), so a worker that edits an argument in place behaves the same in both modes. Calls run
when ``.remote`` is called, one at a time in the calling thread, and an exception is raised from
:func:`wait_for`, where Ray raises it. Generator methods (an engine's ``generate_stream``) are read through
:func:`stream_calls` in both modes: Ray streaming generator tasks, or the generator itself in this thread.
"""

from __future__ import annotations

import copy
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


class CallTimeout(TimeoutError):
    """A call to a worker or engine passed the run's deadline (:data:`CALL_DEADLINE`); the message names it."""


class CallDeadline:
    """How long one wait on workers may last: ``seconds`` (None: no deadline). The driver sets it from the
    measured step times (openrlhf/trainer/supervisor.py), so a hung worker or collective ends the wait."""

    def __init__(self) -> None:
        self.seconds: float | None = None


CALL_DEADLINE = CallDeadline()


def wait_for(refs: list, what: str = "") -> list:
    """The results of ``refs``: in-driver results directly, Ray object refs through ``ray.get``.

    Ray refs are waited on together: the first one that holds an error raises at once (a rank that died
    leaves the others blocked in a collective: their results would never come), and past
    :data:`CALL_DEADLINE` a :class:`CallTimeout` names ``what`` and how many calls had not answered.
    """
    if refs and all(isinstance(r, InDriverResult) for r in refs):
        return [r.result() for r in refs]
    import time

    import ray

    deadline = CALL_DEADLINE.seconds
    start = time.monotonic()
    pending = list(refs)
    values: dict[Any, Any] = {}
    while pending:
        left = None if deadline is None else max(0.0, deadline - (time.monotonic() - start))
        ready, pending = ray.wait(pending, num_returns=1, timeout=left)
        if not ready:
            raise CallTimeout(
                f"{what or 'a call to the workers'}: {len(pending)} of {len(refs)} calls did not answer within "
                f"{deadline:.0f} s (the run's call deadline)"
            )
        values[ready[0]] = ray.get(ready[0])  # raises now when the call failed or its worker died
    return [values[ref] for ref in refs]


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
    import time

    last_item = time.monotonic()
    while pending:
        deadline = CALL_DEADLINE.seconds
        left = None if deadline is None else max(0.0, deadline - (time.monotonic() - last_item))
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=left)
        if not ready:
            raise CallTimeout(
                f"{len(pending)} streaming call(s) ({calls[0][1]}) gave nothing for {deadline:.0f} s "
                "(the run's call deadline)"
            )
        last_item = time.monotonic()
        for generator in ready:
            try:
                ref = next(generator)
            except StopIteration:
                del pending[generator]
                continue
            yield pending[generator], ray.get(ref)


def is_in_driver(handle: Any) -> bool:
    return isinstance(handle, InDriverHandle)
