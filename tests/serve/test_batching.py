"""RequestBatcher's grouping rules, with a generate function that records its calls and holds the first one
until the other requests are waiting (so what gets batched is decided, not timing-dependent)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from openrlhf.rollout.base import GenerationOutput, GenerationRequest, SamplingParams
from openrlhf.serve.batching import RequestBatcher


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[list[str], SamplingParams]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, prompts: list[GenerationRequest], params: SamplingParams) -> list[list[GenerationOutput]]:
        self.entered.set()
        if not self.calls:
            self.release.wait(10)  # the first call holds the engine while the others queue up
        self.calls.append(([p.prompt_text for p in prompts], params))
        if self.fail_on in [p.prompt_text for p in prompts]:
            raise RuntimeError("engine broke")
        return [[GenerationOutput(p.prompt_token_ids, [1], f"echo {p.prompt_text}", [0.0], "stop")] for p in prompts]


def request(text: str) -> GenerationRequest:
    return GenerationRequest(text, [1, 2, 3], [])


GREEDY = SamplingParams(n=1, temperature=0.0, max_new_tokens=4)
HOT = SamplingParams(n=1, temperature=1.0, max_new_tokens=4)


def run_all(batcher: RequestBatcher, recorder: Recorder, jobs: list[tuple[str, SamplingParams]]):
    """Submit the first job; once the engine holds it, submit the rest from threads and, when all of them are
    waiting, let the engine go. Returns the futures in job order."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        first = pool.submit(batcher.submit, request(jobs[0][0]), jobs[0][1])
        assert recorder.entered.wait(10)
        futures = []
        for text, params in jobs[1:]:  # one at a time, so they queue in job order
            futures.append(pool.submit(batcher.submit, request(text), params))
            while len(batcher._waiting) < len(futures):
                threading.Event().wait(0.005)
        recorder.release.set()
        return [first, *futures]


def test_waiting_requests_with_equal_params_share_a_call_and_get_their_own_outputs():
    recorder = Recorder()
    batcher = RequestBatcher(recorder, max_batch_size=3)
    jobs = [("p0", GREEDY), ("p1", GREEDY), ("p2", HOT), ("p3", GREEDY), ("p4", GREEDY), ("p5", HOT)]
    futures = run_all(batcher, recorder, jobs)
    assert [f.result()[0].text for f in futures] == [f"echo p{i}" for i in range(6)]
    # p0 alone (the engine was idle), then p1 with the next two greedy ones (max 3), then the two hot ones
    assert [texts for texts, _ in recorder.calls] == [["p0"], ["p1", "p3", "p4"], ["p2", "p5"]]
    assert [params for _, params in recorder.calls] == [GREEDY, GREEDY, HOT]
    assert batcher.stats() == {"requests": 6, "engine_calls": 3, "largest_batch": 3, "max_batch_size": 3}


def test_seeded_requests_run_alone():
    recorder = Recorder()
    batcher = RequestBatcher(recorder)
    seeded = SamplingParams(n=1, temperature=1.0, max_new_tokens=4, seed=7)
    futures = run_all(batcher, recorder, [("a", GREEDY), ("b", seeded), ("c", seeded), ("d", GREEDY)])
    assert all(f.result() for f in futures)
    assert [texts for texts, _ in recorder.calls] == [["a"], ["b"], ["c"], ["d"]]


def test_an_engine_error_reaches_every_request_of_its_call_and_the_batcher_goes_on():
    recorder = Recorder(fail_on="bad")
    batcher = RequestBatcher(recorder)
    futures = run_all(batcher, recorder, [("x", GREEDY), ("bad", GREEDY), ("y", GREEDY)])
    assert futures[0].result()[0].text == "echo x"
    for future in futures[1:]:
        with pytest.raises(RuntimeError, match="engine broke"):
            future.result()
    assert batcher.submit(request("after"), GREEDY)[0].text == "echo after"


def test_max_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="max_batch_size"):
        RequestBatcher(Recorder(), max_batch_size=0)
