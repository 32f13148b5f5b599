"""Workers in the driver's process: which runs get them (train.worker_mode), and that a call there keeps a Ray
actor call's semantics (copies both ways, the error raised where the caller waits)."""

from __future__ import annotations

import pytest

from openrlhf.config_loading import load_config
from openrlhf.plan.layout import resolve_worker_mode
from openrlhf.utils.actor_calls import InDriverHandle, wait_for


class Counter:
    def __init__(self) -> None:
        self.seen: list[list[int]] = []
        self.kept = {"values": [1]}

    def append_to(self, values: list[int]) -> list[int]:
        values.append(99)  # edits its argument, as a worker may
        self.seen.append(values)
        return values

    def state(self) -> dict:
        return self.kept  # hands out its own state

    def fail(self) -> None:
        raise ValueError("step 3: the loss is not finite")


def test_a_call_copies_its_arguments_and_its_result_as_ray_does():
    handle = InDriverHandle(Counter())
    mine = [1, 2]
    (result,) = wait_for([handle.append_to.remote(mine)])
    assert mine == [1, 2] and result == [1, 2, 99]
    (state,) = wait_for([handle.state.remote()])
    state["values"].append(2)
    assert wait_for([handle.state.remote()]) == [{"values": [1]}]


def test_a_worker_error_is_raised_where_the_caller_waits():
    handle = InDriverHandle(Counter())
    ref = handle.fail.remote()  # no raise yet: a Ray call returns a ref first too
    with pytest.raises(ValueError, match="loss is not finite"):
        wait_for([ref])


def test_a_closed_worker_says_so():
    handle = InDriverHandle(Counter())
    handle.close()
    with pytest.raises(RuntimeError, match="shut down; cannot call 'state'"):
        handle.state.remote()


def _cfg(*args: str):
    cfg, _ = load_config(["--demo.enable", "false", *args])
    return cfg


HYBRID_ONE_RANK = ("--train.colocate_all", "true", "--actor.num_gpus_per_node", "1")


def test_auto_keeps_ray_for_a_cluster_several_ranks_or_separate_engines():
    assert resolve_worker_mode(_cfg(*HYBRID_ONE_RANK), "in_process", joins_cluster=True) == "ray"  # ray job submit
    assert resolve_worker_mode(_cfg(*HYBRID_ONE_RANK), "in_process") == "in_driver"
    assert (
        resolve_worker_mode(_cfg("--train.colocate_all", "true", "--actor.num_gpus_per_node", "2"), "in_process")
        == "ray"
    )
    assert resolve_worker_mode(_cfg("--actor.num_gpus_per_node", "1"), "object_store") == "ray"
    assert resolve_worker_mode(_cfg(*HYBRID_ONE_RANK, "--train.worker_mode", "ray"), "in_process") == "ray"


def test_in_driver_asked_where_it_cannot_run_is_refused_with_the_reasons():
    cfg = _cfg("--train.worker_mode", "in_driver", "--actor.num_gpus_per_node", "2")
    with pytest.raises(ValueError) as err:
        resolve_worker_mode(cfg, "object_store")
    message = str(err.value)
    assert message.startswith("train.worker_mode=in_driver:")
    assert "the policy has 2 ranks" in message and "resolves to object_store" in message
