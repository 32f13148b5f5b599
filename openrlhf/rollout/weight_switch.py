"""Weight updates that land between two decoding steps of a generation in progress (partial rollouts).

With ``train.partial_rollout_enable`` the policy pushes new weights as soon as it has trained, even while an
engine is still generating the next batch. The engine actor then runs two threads (``max_concurrency=2``): the
generating one and the one that receives the update. Writing the weights from the second thread while the first
runs a forward would mix two versions inside one step, so the update is handed to the generating thread instead,
which runs it at its next safe point (:meth:`WeightSwitch.safe_point`, called between decoding steps: after
step t's logits, before step t + 1's forward). The update's caller waits until it ran. With no generation in
progress the caller runs the update itself, and a generation that starts meanwhile waits for it.

Safe points: the HF engine's logits-processor hook after each decoding step; the vLLM engine's loop before
each ``llm_engine.step()`` (a ``collective_rpc`` runs between two engine-core steps, so one step never mixes two
versions). Tokens sampled before the switch come from the old weights, later ones from the new; the engine
records, per response, how many tokens it had sampled at each switch (``GenerationOutput.weight_switches``;
vLLM's own per-token weight-version spans there, labelled by ``llm_engine.set_weight_version``), and the sampler
log-probs of each token are those of the weights that sampled it, so the importance correction stays per token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class _Update:
    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # raised in the caller's thread
            self.error = exc
        finally:
            self.done.set()

    def wait(self) -> Any:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


class WeightSwitch:
    """Serialises weight updates with generation: updates run between decoding steps or between generations.

    ``switches`` counts the updates applied (the engine's weight version since it started).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generating = 0
        self._updating = False
        self._queued: list[_Update] = []
        self.switches = 0

    @contextmanager
    def generating(self) -> Iterator[None]:
        """Around one generation: waits for an update running outside a generation; on leaving, runs the updates
        handed over after the last safe point."""
        with self._cond:
            while self._updating:
                self._cond.wait()
            self._generating += 1
        try:
            yield
        finally:
            while True:  # an update handed over after the last safe point runs before the generation ends
                with self._cond:
                    if not self._queued:
                        self._generating -= 1
                        self._cond.notify_all()
                        break
                self.safe_point()

    @property
    def generating_now(self) -> bool:
        """Whether a generation is in progress (an update running now runs inside it, at a safe point)."""
        with self._cond:
            return self._generating > 0

    def safe_point(self) -> int:
        """Run the updates handed over so far (in the generating thread, between two decoding steps); returns how
        many ran."""
        with self._cond:
            queued, self._queued = self._queued, []
        for update in queued:
            update.run()
            if update.error is None:
                with self._cond:
                    self.switches += 1
        return len(queued)

    def apply(self, fn: Callable[[], Any]) -> Any:
        """Run the weight update ``fn``: at the running generation's next safe point, else here and now."""
        with self._cond:
            if self._generating:
                update = _Update(fn)
                self._queued.append(update)
            else:
                update = None
                self._updating = True
        if update is not None:
            return update.wait()
        try:
            result = fn()
            with self._cond:
                self.switches += 1
            return result
        finally:
            with self._cond:
                self._updating = False
                self._cond.notify_all()
