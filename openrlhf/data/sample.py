"""The one Sample type every dataset format is normalised into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Reward tasks a label object may name (the reward service routes on them).
TASKS = ("rec", "ovd", "math", "counting", "choice", "yes_no", "exact", "generative", "preference")


@dataclass
class Sample:
    """One prompt with its label.

    messages: chat messages in Hugging Face form; a user turn with images has list content
        ``[{"type": "image"}, ..., {"type": "text", "text": ...}]`` with the image parts where the
        ``<image>`` placeholders stood, so multi-image rows keep their order.
    images: resolved image paths, in the order their placeholders appear.
    label: the solution string (or a structured label such as R1-Reward's preference answer).
    task: the reward method for this row (None: the reward server's default recipe).
    label_fields: extra task fields sent along with the label (e.g. image_size, input_size).
    source, line: where the row came from: the file as named, and the 1-based line the row starts on (jsonl:
        its line; JSON list: the line its object starts on; parquet / saved datasets: the 1-based row index).
    response: a full reference response (e.g. with <think>/<answer>) for SFT; falls back to the label.
    """

    messages: list[dict[str, Any]]
    images: list[str] = field(default_factory=list)
    label: Any = ""
    task: str | None = None
    label_fields: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    line: int = 0
    id: str | None = None
    response: str | None = None  # a reference response, for supervised fine-tuning

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def is_multimodal(self) -> bool:
        return bool(self.images)

    def reward_label(self) -> Any:
        """The label as sent to the reward service: a plain string, or an object with the task."""
        if self.task is None and not self.label_fields:
            return self.label
        obj: dict[str, Any] = {"solution": self.label}
        if self.task is not None:
            obj["task"] = self.task
        obj.update(self.label_fields)
        return obj
