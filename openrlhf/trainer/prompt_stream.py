"""Prompts in a reproducible order with a saveable position (episode, index), for exact resume."""

from __future__ import annotations

import random
from dataclasses import dataclass

from openrlhf.config import ConfigError
from openrlhf.data.sample import Sample


@dataclass
class PromptStream:
    samples: list[Sample]
    batch_size: int
    seed: int
    shuffle: bool = True
    episode: int = 0
    index: int = 0

    def _order(self, episode: int) -> list[int]:
        order = list(range(len(self.samples)))
        if self.shuffle:
            random.Random(self.seed * 1000003 + episode).shuffle(order)
        return order

    @property
    def steps_per_episode(self) -> int:
        return max(1, len(self.samples) // self.batch_size)

    def next_batch(self) -> list[Sample]:
        """The next ``batch_size`` prompts; a short tail is dropped and a new episode starts."""
        if len(self.samples) < self.batch_size:
            raise ConfigError(
                f"the dataset has {len(self.samples)} prompts, fewer than train.rollout_batch_size={self.batch_size}"
            )
        if self.index + self.batch_size > len(self.samples):
            self.episode += 1
            self.index = 0
        order = self._order(self.episode)
        batch = [self.samples[i] for i in order[self.index : self.index + self.batch_size]]
        self.index += self.batch_size
        return batch

    def state(self) -> dict[str, int]:
        return {"episode": self.episode, "index": self.index}

    def load_state(self, state: dict[str, int]) -> None:
        self.episode, self.index = int(state["episode"]), int(state["index"])
