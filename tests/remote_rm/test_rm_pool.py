"""Worker pools: a hung worker is killed at its timeout, a dead one is replaced, and the scorer turns
both into a 0 score (never free credit) while the rest of the batch is scored normally."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from remote_rm import worker
from remote_rm.pool import PoolCrashed, PoolTimeout, WorkerPool
from remote_rm.protocol import Label, RewardRequest
from remote_rm.scoring import Scorer
from remote_rm.settings import parse_config


def double(x: int) -> int:
    return 2 * x


def sleep_then(x: float) -> float:
    time.sleep(x)
    return x


def die(code: int = 3) -> None:
    os._exit(code)


def flaky_math(answer: str, gold: str, timeout_s: float):
    """math-verify, except that "CRASH" kills the worker and "HANG" blocks it."""
    if "CRASH" in answer:
        os._exit(3)
    if "HANG" in answer:
        time.sleep(120)
    return worker.verify_math(answer, gold, timeout_s)


def test_pool_timeout_kills_and_replaces_the_worker():
    async def scenario():
        pool = WorkerPool("t", 1)
        try:
            assert await pool.run(double, 21, timeout=60) == 42
            started = time.monotonic()
            with pytest.raises(PoolTimeout):
                await pool.run(sleep_then, 60, timeout=1.0)
            assert time.monotonic() - started < 30  # the call sleeps 60 s: it was cut off
            assert pool.restarts == 1
            assert await pool.run(double, 2, timeout=60) == 4  # the fresh worker serves
        finally:
            pool.close()

    asyncio.run(scenario())


def pid_after(x: float) -> int:
    time.sleep(x)
    return os.getpid()


def test_a_timeout_replaces_only_the_hung_worker_and_queue_wait_is_not_counted():
    async def scenario():
        pool = WorkerPool("t", 2)
        try:
            await pool.warm_up(os.getpid)
            # one worker hangs past its deadline while the other serves a long call that must finish
            hung = pool.run(sleep_then, 60, timeout=1.0)
            busy = pool.run(pid_after, 3.0, timeout=60)
            results = await asyncio.gather(hung, busy, return_exceptions=True)
            assert isinstance(results[0], PoolTimeout)
            survivor = results[1]
            assert pool.restarts == 1
            # the survivor still serves (same process: its caches are kept); the hung one was replaced
            pids = set(await asyncio.gather(*(pool.run(pid_after, 0.5, timeout=60) for _ in range(4))))
            assert survivor in pids
            # four 1.5 s calls on 2 workers: the last two wait ~1.5 s, yet each fits a 2.5 s deadline
            started = time.monotonic()
            assert await asyncio.gather(*(pool.run(sleep_then, 1.5, timeout=2.5) for _ in range(4))) == [1.5] * 4
            assert time.monotonic() - started >= 2.9
        finally:
            pool.close()

    asyncio.run(scenario())


def test_workers_killed_from_outside_cost_no_call():
    """SIGKILL from outside, idle or busy, repeatedly (bench/reward_soak.py found that this can break pebble's
    pool as a whole): every call still returns its own result."""
    import signal

    import psutil

    async def scenario():
        pool = WorkerPool("t", 2)
        try:
            await pool.warm_up(os.getpid)
            for round_ in range(6):
                workers = []
                for proc in psutil.Process().children(recursive=True):
                    try:
                        if proc.status() != psutil.STATUS_ZOMBIE and any("spawn_main" in x for x in proc.cmdline()):
                            workers.append(proc)
                    except psutil.Error:
                        continue
                assert workers
                calls = [pool.run(double, round_ * 10 + k, timeout=60) for k in range(4)]
                workers[round_ % len(workers)].send_signal(signal.SIGKILL)
                assert await asyncio.gather(*calls) == [2 * (round_ * 10 + k) for k in range(4)]
            assert pool.restarts >= 1
        finally:
            pool.close()

    asyncio.run(scenario())


def slow_length(response: str, label, **kw) -> float:
    """A custom pool component: the response length, except that "HANG" blocks its worker."""
    if "HANG" in response:
        time.sleep(60)
    return float(len(response))


SLOW_CONFIG = """
default_recipe: slow
recipes:
  slow:
    components:
      - {fn: "test_rm_pool:slow_length", name: length, needs_label: false}
pool: {workers: 2, sample_timeout_s: 1.0, chunk_size: 32}
wordnet: {enabled: false}
"""


def test_a_hanging_sample_scores_zero_alone_and_is_counted():
    async def scenario():
        scorer = Scorer(parse_config(SLOW_CONFIG))
        await scorer.start()
        try:
            responses = ["a", "bb", "HANG", "dddd", "eeeee", "ffffff"]
            request = RewardRequest(responses, [""] * 6, [Label("x")] * 6)
            started = time.monotonic()
            out = await scorer.score(request)
            assert time.monotonic() - started < 30  # "HANG" sleeps 60 s: only its own deadline was waited
            assert out["components"]["length"] == [1.0, 2.0, 0.0, 4.0, 5.0, 6.0]
            assert out["extra_logs"]["scoring_timeouts"] == 1.0
        finally:
            await scorer.close()

    asyncio.run(scenario())


def test_pool_crash_is_retried_then_reported_and_others_survive():
    async def scenario():
        pool = WorkerPool("t", 2)
        try:
            results = await asyncio.gather(
                pool.run(die, timeout=60), pool.run(double, 5, timeout=60), return_exceptions=True
            )
            assert isinstance(results[0], PoolCrashed)
            assert results[1] == 10  # the innocent call was retried on the new workers
            assert pool.restarts >= 1
            assert await pool.run(double, 1, timeout=60) == 2
        finally:
            pool.close()

    asyncio.run(scenario())


CONFIG = """
default_recipe: math
recipes:
  math:
    score: accuracy
    components:
      - {fn: format}
      - {fn: math_accuracy, name: accuracy}
pool: {workers: 1, math_workers: 1, math_timeout_s: 1}
wordnet: {enabled: false}
"""


def test_scorer_scores_verifier_crash_and_hang_as_zero():
    async def scenario():
        scorer = Scorer(parse_config(CONFIG))
        scorer.math_fn = flaky_math
        await scorer.start()
        try:
            answers = ["1/2", "CRASH", "HANG", "0.5", "\\frac{2}{4}"]
            queries = [f"<think>t</think><answer>{a}</answer>" for a in answers]
            request = RewardRequest(queries, [""] * len(queries), [Label("0.5")] * len(queries))
            started = time.monotonic()
            out = await scorer.score(request)
            assert time.monotonic() - started < 60  # "HANG" sleeps 120 s: it was cut off
            assert out["components"]["accuracy"] == [1.0, 0.0, 0.0, 1.0, 1.0]
            assert out["rewards"] == [2.0, 1.0, 1.0, 2.0, 2.0]
            assert out["extra_logs"]["math_timeouts"] == 1.0
            assert out["extra_logs"]["math_errors"] >= 1.0
            again = await scorer.score(RewardRequest(queries[:1], [""], [Label("0.5")]))
            assert again["rewards"] == [2.0]  # the pool recovered
        finally:
            await scorer.close()

    asyncio.run(scenario())


def test_identical_answers_are_verified_once():
    calls = []

    async def counting(fn, *args, timeout):
        calls.append(args)
        return (1.0, None)

    async def scenario():
        scorer = Scorer(parse_config(CONFIG))
        scorer.math_pool.run = counting  # count the calls the scorer makes, without processes
        queries = ["<think>t</think><answer>4</answer>"] * 8 + ["<think>t</think><answer>5</answer>"]
        out = await scorer.score(RewardRequest(queries, [""] * 9, [Label("4")] * 9))
        assert out["components"]["accuracy"] == [1.0] * 9
        assert len(calls) == 2

    asyncio.run(scenario())


def stalling_inline(response: str, label, **kw) -> float:
    """A custom inline component that stalls (4 s) on "STALL": inline work cannot be cut off, only not waited for."""
    if "STALL" in response:
        time.sleep(4)
    return 1.0


DEADLINE_CONFIG = """
default_recipe: mixed
recipes:
  mixed:
    components:
      - {fn: "test_rm_pool:stalling_inline", name: inline, where: inline, needs_label: false}
      - {fn: "test_rm_pool:slow_length", name: length, needs_label: false}
pool: {workers: 2, sample_timeout_s: 30.0, chunk_size: 32}
limits: {request_deadline_s: 1.5}
wordnet: {enabled: false}
"""


def test_request_deadline_answers_with_counted_fallbacks():
    """A request whose components run past limits.request_deadline_s is answered at the deadline: what was
    scored keeps its value, the rest gets the fallback 0 and is counted (deadline_fallbacks)."""

    async def scenario():
        scorer = Scorer(parse_config(DEADLINE_CONFIG))
        await scorer.start()
        try:
            responses = ["a", "STALL", "HANG"]  # STALL: the inline component sleeps 4 s; HANG: the pool one 60 s
            started = time.monotonic()
            out = await scorer.score(RewardRequest(responses, [""] * 3, [Label("x")] * 3))
            assert time.monotonic() - started < 3.5  # not the 4 s of STALL, not the 30 s of HANG's deadline
            # inline components run one after another in one thread: those after STALL are late too
            assert out["components"]["inline"][0] == 1.0 and out["components"]["inline"][1:] == [0.0, 0.0]
            # the pool ran in chunks beside it: everything but HANG came back in time
            assert out["components"]["length"][:2] == [1.0, 5.0] and out["components"]["length"][2] == 0.0
            assert out["extra_logs"]["deadline_fallbacks"] == 3.0
            assert out["rewards"] == [2.0, 5.0, 0.0]
            assert b"remote_rm_deadline_fallbacks_total 3.0" in scorer.metrics.render()
        finally:
            await scorer.close()

    asyncio.run(scenario())


def test_a_call_in_a_pool_that_was_replaced_is_retried_at_once():
    """A call waiting in a pool that stops under it (another call replaced the broken pool, or pebble's own
    threads died) is seen within a second and retried on the fresh pool, not after its 2 x timeout + 30 s bound:
    otherwise the request deadline gives its sample the fallback (found by the 100,000-request soak)."""

    async def scenario():
        pool = WorkerPool("t", 1)
        try:
            await pool.warm_up(os.getpid)
            started = time.monotonic()
            call = asyncio.ensure_future(pool.run(sleep_then, 2.0, timeout=10.0))
            await asyncio.sleep(0.5)
            pool._replace_pool(pool._generation, "a test replaces the pool under a running call")
            assert await call == 2.0
            assert time.monotonic() - started < 15  # the bound alone would be 2 x 10 + 30 = 50 s
            assert pool.pool_replacements == 1
        finally:
            pool.close()

    asyncio.run(scenario())
