"""Process pools that start once and replace only the worker that hung or died (pebble's ``ProcessPool``).

A :class:`WorkerPool` runs ``size`` worker processes (``spawn`` start method: no fork of a threaded server),
each running ``initializer(*initargs)`` once. Calls queue in the pool, and a call's timeout counts from when
a worker starts it, so time spent waiting behind other calls never counts against it.

- A call that outlives its timeout raises :class:`PoolTimeout`; pebble kills the one worker running it and
  starts a fresh one (with the initializer): the other workers, their caches and their calls are untouched.
- A call whose worker dies is retried (``attempts`` in all), retries one at a time, so a call that kills its
  worker again raises :class:`PoolCrashed` and costs only itself.
- A caller that gives up (its request was cancelled) leaves the call to finish: cancelling it would kill a
  worker for nothing.
- A worker killed from outside at the wrong moment (holding the pool's task channel) can break pebble's pool
  as a whole ("Unexpected error within the Pool", or "All workers expired" when fresh workers are killed while
  they start; found by bench/reward_soak.py): then the whole pool is replaced and the call retried.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger("remote_rm.pool")


class PoolTimeout(Exception):
    """A call did not finish within its timeout (its worker was killed and replaced)."""


class PoolCrashed(Exception):
    """A call's worker process died, on every attempt."""


class _PoolWedged(Exception):
    """The pool gave no answer long after the call's own deadline: it broke with the call in it."""


class WorkerPool:
    """``size`` worker processes running ``initializer(*initargs)`` once each; see the module docstring."""

    def __init__(
        self,
        name: str,
        size: int,
        initializer: Callable[..., None] | None = None,
        initargs: tuple = (),
        attempts: int = 3,
    ) -> None:
        if size < 1:
            raise ValueError(f"pool {name}: size must be >= 1, got {size}")
        self.name = name
        self.size = size
        self.initializer = initializer
        self.initargs = initargs
        self.attempts = attempts
        self.restarts = 0  # workers replaced after a timeout or a crash
        self.pool_replacements = 0  # whole pools replaced after pebble's pool broke
        self._generation = 0
        self._pool = None
        self._retry_lock: asyncio.Lock | None = None
        self._closed = False

    def start(self) -> None:
        if self._pool is None:
            from pebble import ProcessPool

            self._pool = ProcessPool(
                max_workers=self.size,
                initializer=self.initializer,
                initargs=self.initargs,
                context=multiprocessing.get_context("spawn"),
            )

    async def warm_up(self, probe: Callable[[], Any], timeout: float = 300.0) -> list[Any]:
        """Start the workers and return one probe result per worker slot (submitted together)."""
        self.start()
        calls = [self._schedule(probe, (), None) for _ in range(self.size)]
        return list(await asyncio.wait_for(asyncio.gather(*calls), timeout))

    async def _schedule(self, fn: Callable[..., Any], args: tuple, timeout: float | None) -> Any:
        pool = self._pool
        assert pool is not None
        future = pool.schedule(fn, args=args, timeout=timeout)
        # shield: a cancelled caller does not cancel the call (pebble would kill the worker running it)
        waiting = asyncio.wrap_future(future)
        if timeout is None:
            return await asyncio.shield(waiting)
        # pebble enforces ``timeout`` (its TimeoutError). A pool that stopped with the call in it (a loop thread
        # died, or another call replaced it) never answers: checked every second, and bounded in any case; said
        # with its own exception (in Python 3.11 both timeouts are the same class).
        loop = asyncio.get_running_loop()
        bound = loop.time() + 2 * timeout + 30
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=min(1.0, max(0.0, bound - loop.time())))
            if done:
                return waiting.result()
            if not pool.active:
                raise _PoolWedged("the pool stopped with the call in it")
            if loop.time() >= bound:
                raise _PoolWedged(f"no answer from the pool in {2 * timeout + 30:g} s")

    def _broken(self) -> bool:
        return self._pool is not None and not self._pool.active

    def _replace_pool(self, generation: int, reason: str) -> None:
        """Stop the pool of ``generation`` and start a fresh one (once per generation)."""
        if generation != self._generation or self._closed:
            return
        old, self._pool = self._pool, None
        self._generation += 1
        self.restarts += 1
        self.pool_replacements += 1
        log.warning("pool %s: replacing the whole pool (%s)", self.name, reason)
        if old is not None:
            old.stop()  # not joined: its manager threads end on their own
        self.start()

    async def run(self, fn: Callable[..., Any], *args: Any, timeout: float) -> Any:
        """``fn(*args)`` in a worker; raises :class:`PoolTimeout` or :class:`PoolCrashed`."""
        from pebble import ProcessExpired

        if self._closed:
            raise PoolCrashed(f"pool {self.name} is closed")
        self.start()
        if self._retry_lock is None:
            self._retry_lock = asyncio.Lock()
        name = getattr(fn, "__name__", repr(fn))
        for attempt in range(1, self.attempts + 1):
            generation = self._generation
            try:
                if attempt == 1:
                    return await self._schedule(fn, args, timeout)
                async with self._retry_lock:  # retries run one at a time: a crasher dies alone
                    return await self._schedule(fn, args, timeout)
            except FutureTimeout:
                self.restarts += 1
                log.warning("pool %s: a call to %s ran over %g s; its worker was replaced", self.name, name, timeout)
                raise PoolTimeout(f"{name} ran over {timeout:g} s") from None
            except (_PoolWedged, BrokenProcessPool, RuntimeError) as exc:
                if self._closed:
                    raise PoolCrashed(f"pool {self.name} is closed") from None
                if isinstance(exc, RuntimeError) and not isinstance(exc, BrokenProcessPool) and not self._broken():
                    raise  # the function's own RuntimeError
                self._replace_pool(generation, f"pebble's pool broke: {exc or type(exc).__name__}")
            except ProcessExpired as exc:
                self.restarts += 1
                log.warning(
                    "pool %s: a worker died in %s (%s); attempt %d of %d", self.name, name, exc, attempt, self.attempts
                )
        raise PoolCrashed(f"{name}: the worker died on each of {self.attempts} attempts")

    def close(self) -> None:
        """Stop the workers now (running calls are abandoned)."""
        self._closed = True
        if self._pool is not None:
            self._pool.stop()
            self._pool.join(timeout=10)
            self._pool = None
