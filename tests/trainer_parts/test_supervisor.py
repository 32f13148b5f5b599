"""The self-healing run's parts on a real local Ray: waits with a deadline, a dead rank noticed at once (not
after its peers' collective gives up), the lost part named, the deadline derived from the step times, and the
log rewound to a checkpoint. The whole restart runs in tests/trainer/test_e2e_multinode.py."""

from __future__ import annotations

import os
import signal
import sys
import time
from types import SimpleNamespace

import pytest

from openrlhf.trainer.metrics import MetricsLogger, read_metrics
from openrlhf.trainer.supervisor import RunSupervisor, identify_fault, resume_command
from openrlhf.utils.actor_calls import CALL_DEADLINE, CallTimeout, stream_calls, wait_for


@pytest.fixture(scope="module")
def ray_local():
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture
def deadline():
    before = CALL_DEADLINE.seconds
    yield CALL_DEADLINE
    CALL_DEADLINE.seconds = before


def _actors(ray, n: int) -> list:
    class Sleeper:  # defined here, so Ray ships it by value (the test module is not importable by the workers)
        def pid(self) -> int:
            return os.getpid()

        def sleep(self, seconds: float) -> float:
            time.sleep(seconds)
            return seconds

        def trickle(self, first_gap: float, then_gap: float):
            time.sleep(first_gap)
            yield "first"
            time.sleep(then_gap)
            yield "second"

    cls = ray.remote(num_cpus=0)(Sleeper)
    return [cls.remote() for _ in range(n)]


def test_a_dead_rank_is_noticed_while_its_peer_still_blocks_and_is_named(ray_local, deadline):
    deadline.seconds = None
    rank0, rank1 = _actors(ray_local, 2)
    pid1 = ray_local.get(rank1.pid.remote())
    refs = [rank0.sleep.remote(120), rank1.sleep.remote(120)]  # rank 0 stands for a peer stuck in a collective
    time.sleep(1.0)
    os.kill(pid1, signal.SIGKILL)
    t = time.monotonic()
    with pytest.raises(ray_local.exceptions.RayActorError) as info:
        wait_for(refs, "policy.train_on_experience")
    assert time.monotonic() - t < 30, "the wait lasted until the peer's call ended"
    resources = SimpleNamespace(policy=SimpleNamespace(handles=[rank0, rank1]), reference=None, engines=[])
    fault = identify_fault(info.value, resources, step=4)
    assert fault is not None and fault.role == "policy rank 1", fault
    assert f"pid {pid1}" in fault.where and "node " in fault.where
    assert fault.line().startswith("step 5: policy rank 1 on node ")
    ray_local.kill(rank0)


def test_a_call_past_the_deadline_is_a_lost_part_naming_the_call(ray_local, deadline):
    (worker,) = _actors(ray_local, 1)
    deadline.seconds = 1.0
    with pytest.raises(CallTimeout, match=r"engines.update_weights: 1 of 1 calls did not answer within 1 s"):
        wait_for([worker.sleep.remote(30)], "engines.update_weights")
    try:
        raise RuntimeError("step failed") from CallTimeout("x")
    except RuntimeError as exc:
        fault = identify_fault(exc, None, step=0)
    assert fault is not None and fault.kind == "timeout"
    assert identify_fault(ValueError("a bad row"), None, step=0) is None  # not a lost part: the run stops
    # a streaming call (an engine's generation) that stops answering between items
    ray_local.kill(worker)
    (engine,) = _actors(ray_local, 1)
    ray_local.get(engine.pid.remote())  # started
    deadline.seconds = 3.0
    items = []
    with pytest.raises(CallTimeout, match="streaming call"):
        for _, item in stream_calls([(engine, "trickle", (0.1, 30))]):
            items.append(item)
    assert items == ["first"]
    ray_local.kill(engine)


def test_within_the_deadline_results_come_back_in_order(ray_local, deadline):
    deadline.seconds = 20.0
    workers = _actors(ray_local, 3)
    assert wait_for([w.sleep.remote(s) for w, s in zip(workers, (0.3, 0.1, 0.2), strict=True)]) == [0.3, 0.1, 0.2]
    for w in workers:
        ray_local.kill(w)


def test_the_deadline_follows_the_longest_step_and_restarts_are_counted(deadline):
    sup = RunSupervisor(max_restarts=2, min_deadline_s=60.0)
    sup.arm()
    assert CALL_DEADLINE.seconds == 120.0  # set-up: twice the minimum
    assert sup.step_done(3.0) == {"faults/restarts": 0.0}
    assert CALL_DEADLINE.seconds == 60.0  # 10 x 3 s is under the minimum
    sup.step_done(12.0)
    sup.step_done(5.0)
    assert CALL_DEADLINE.seconds == 120.0  # 10 x the longest step so far
    from openrlhf.trainer.supervisor import RunFault

    assert sup.admit(RunFault(7, "rollout engine 0", "its worker process has died"))
    metrics = sup.step_done(4.0)
    assert metrics["faults/restarts"] == 1.0 and metrics["faults/seconds_lost"] >= 0.0
    assert sup.admit(RunFault(9, "policy rank 1", "its node died", kind="node"))
    assert not sup.admit(RunFault(11, "rollout engine 0", "its worker process has died"))  # the third > 2
    assert [f["step"] for f in sup.summary()["faults"]] == [8, 10, 12]
    sup.disarm()
    assert CALL_DEADLINE.seconds is None


def test_resume_command_repeats_the_run_with_load_enable(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/openrlhf-train", "--config", "my run.yaml", "--train.max_steps", "9"])
    assert resume_command() == "openrlhf-train --config 'my run.yaml' --train.max_steps 9 --ckpt.load_enable true"
    monkeypatch.setattr(sys, "argv", ["-c"])
    assert "--ckpt.load_enable true" in resume_command()


def test_rewound_log_keeps_each_step_once(tmp_path):
    from openrlhf.config import LoggerConfig

    cfg = LoggerConfig(progress_bar=False)
    with MetricsLogger(tmp_path, cfg, total_steps=6) as logger:
        history = []
        for step in range(1, 6):
            logger.log(step, {"reward/mean": float(step)})
            history.append({"step": step, "reward/mean": float(step)})
        logger.rewind(3, history[:3])  # the checkpoint of step 3: steps 4 and 5 are trained again
        logger.log(4, {"reward/mean": 40.0})
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and rows[-1]["reward/mean"] == 40.0
