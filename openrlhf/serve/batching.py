"""Batching of concurrent chat requests for ``openrlhf-serve``: one engine call for the requests that wait together.

Each request thread submits its encoded prompt and sampling parameters and blocks; one worker thread takes the
oldest waiting request and, with it, every other waiting request whose sampling parameters are equal (up to
``max_batch_size`` prompts), and runs them as one ``engine.generate`` call (the HF engine left-pads the prompts).
Nothing waits on purpose: a request that arrives while the engine is busy joins the next call, so a judge asked
by many clients at once (a reward server's concurrency) gets batched prefill instead of one prompt at a time.

A request with a ``seed`` runs alone, so its sampling is what it would be on an idle server; requests without
one share the engine's running generator anyway. An engine failure fails every request of that call (each gets
the error, the server answers 500).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from openrlhf.rollout.base import GenerationOutput, GenerationRequest, SamplingParams

Generate = Callable[[list[GenerationRequest], SamplingParams], list[list[GenerationOutput]]]


@dataclass
class _Job:
    prompt: GenerationRequest
    params: SamplingParams
    done: threading.Event = field(default_factory=threading.Event)
    outputs: list[GenerationOutput] | None = None
    error: BaseException | None = None


class RequestBatcher:
    """Runs ``generate`` (e.g. ``engine.generate``) on batches of submitted requests in one worker thread.

    ``stats()``: requests answered, engine calls made, the largest batch, and ``max_batch_size``.
    """

    def __init__(self, generate: Generate, max_batch_size: int = 32) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self._generate = generate
        self.max_batch_size = max_batch_size
        self._waiting: list[_Job] = []
        self._cond = threading.Condition()
        self._requests = self._calls = self._largest = 0
        self._worker = threading.Thread(target=self._run, name="openrlhf-serve-batcher", daemon=True)
        self._worker.start()

    def submit(self, prompt: GenerationRequest, params: SamplingParams) -> list[GenerationOutput]:
        """The n outputs for ``prompt`` (blocks until its batch has run; re-raises the engine's error)."""
        job = _Job(prompt, params)
        with self._cond:
            self._waiting.append(job)
            self._cond.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.outputs is not None
        return job.outputs

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {
                "requests": self._requests,
                "engine_calls": self._calls,
                "largest_batch": self._largest,
                "max_batch_size": self.max_batch_size,
            }

    def _take(self) -> list[_Job]:
        """The oldest waiting job and the waiting jobs it can share a call with (caller holds the lock)."""
        first = self._waiting.pop(0)
        if first.params.seed is not None:
            return [first]
        batch, rest = [first], []
        for job in self._waiting:
            fits = len(batch) < self.max_batch_size and job.params.seed is None and job.params == first.params
            (batch if fits else rest).append(job)
        self._waiting = rest
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                batch = self._take()
            try:
                results = self._generate([job.prompt for job in batch], batch[0].params)
                for job, outputs in zip(batch, results, strict=True):
                    job.outputs = outputs
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting request, which re-raises it
                for job in batch:
                    job.error = exc
            finally:
                with self._cond:
                    self._requests += len(batch)
                    self._calls += 1
                    self._largest = max(self._largest, len(batch))
                for job in batch:
                    job.done.set()
