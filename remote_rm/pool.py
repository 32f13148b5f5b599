"""Process pools that start once, bound their in-flight work, and replace hung or dead workers.

A :class:`WorkerPool` wraps ``concurrent.futures.ProcessPoolExecutor`` (``spawn`` start method: no
fork of a threaded server). At most ``max_in_flight`` calls are handed to the executor at a time, so a
call's timeout measures its own run (plus at most one queued call), not the queue in front of it.

- A call that outlives its timeout raises :class:`PoolTimeout`, and the pool is replaced: its worker
  processes are killed (a stuck worker would otherwise hold its slot forever).
- A worker that dies breaks the executor; the pool is replaced and each affected call is retried
  (``attempts`` in all). Retries run one at a time, so a call that crashes its worker again takes
  only itself down and raises :class:`PoolCrashed`; the others cost a retry.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger("remote_rm.pool")


class PoolTimeout(Exception):
    """A call did not finish within its timeout (its worker was killed)."""


class PoolCrashed(Exception):
    """A call's worker process died, on every attempt."""


class _Broken(Exception):
    """This attempt's executor broke (a worker died) or was replaced under it: try again."""


class WorkerPool:
    """``size`` worker processes running ``initializer(*initargs)`` once each; see the module docstring."""

    def __init__(
        self,
        name: str,
        size: int,
        initializer: Callable[..., None] | None = None,
        initargs: tuple = (),
        max_in_flight: int | None = None,
        attempts: int = 3,
    ) -> None:
        if size < 1:
            raise ValueError(f"pool {name}: size must be >= 1, got {size}")
        self.name = name
        self.size = size
        self.initializer = initializer
        self.initargs = initargs
        self.max_in_flight = max_in_flight or size
        self.attempts = attempts
        self.generation = 0
        self.restarts = 0
        self._executor: ProcessPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._retry_lock = asyncio.Lock()
        self._closed = False

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.size,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=self.initializer,
            initargs=self.initargs,
        )

    def start(self) -> None:
        if self._executor is None:
            self._executor = self._new_executor()

    async def warm_up(self, probe: Callable[[], Any], timeout: float = 300.0) -> list[Any]:
        """Start every worker (one probe call each, submitted together) and return the probes' results."""
        self.start()
        loop = asyncio.get_running_loop()
        assert self._executor is not None
        futures = [loop.run_in_executor(self._executor, probe) for _ in range(self.size)]
        return list(await asyncio.wait_for(asyncio.gather(*futures), timeout))

    def _replace(self, generation: int, reason: str) -> None:
        """Kill the workers of ``generation`` and start a fresh executor (once per generation)."""
        if generation != self.generation or self._closed:
            return
        old = self._executor
        self.generation += 1
        self.restarts += 1
        log.warning("pool %s: replacing its workers (%s)", self.name, reason)
        self._executor = self._new_executor()
        if old is not None:
            _kill(old)

    async def run(self, fn: Callable[..., Any], *args: Any, timeout: float) -> Any:
        """``fn(*args)`` in a worker; raises :class:`PoolTimeout` or :class:`PoolCrashed`."""
        if self._closed:
            raise PoolCrashed(f"pool {self.name} is closed")
        self.start()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args)
        async with self._slots:
            for attempt in range(1, self.attempts + 1):
                try:
                    if attempt == 1:
                        return await self._once(loop, call, fn, timeout)
                    async with self._retry_lock:  # retries run one at a time: a crasher dies alone
                        return await self._once(loop, call, fn, timeout)
                except _Broken:
                    continue
        raise PoolCrashed(f"{getattr(fn, '__name__', fn)}: the worker died on each of {self.attempts} attempts")

    async def _once(
        self, loop: asyncio.AbstractEventLoop, call: Callable[[], Any], fn: Callable, timeout: float
    ) -> Any:
        generation, executor = self.generation, self._executor
        assert executor is not None
        name = getattr(fn, "__name__", repr(fn))
        try:
            return await asyncio.wait_for(loop.run_in_executor(executor, call), timeout)
        except asyncio.TimeoutError:
            self._replace(generation, f"a call to {name} ran over {timeout:g} s")
            raise PoolTimeout(f"{name} ran over {timeout:g} s") from None
        except BrokenProcessPool:
            self._replace(generation, "a worker process died")
            raise _Broken from None
        except RuntimeError as exc:  # "cannot schedule new futures after shutdown": replaced meanwhile
            if "shutdown" not in str(exc) or self._closed:
                raise
            raise _Broken from None

    def close(self) -> None:
        """Stop the workers now (running calls are abandoned)."""
        self._closed = True
        if self._executor is not None:
            _kill(self._executor)
            self._executor = None


def _kill(executor: ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor cannot cancel a running call; killing its processes is the only way to free a
    # stuck worker. _processes is the executor's pid -> Process map (stable since Python 3.2).
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for proc in processes:
        if proc.is_alive():
            proc.kill()
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        proc.join(timeout=5)
