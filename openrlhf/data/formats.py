"""The dataset formats, each normalised into a Sample. A bad row raises RowInvalid with the reason.

- omnirl (OmniRL / R1-V): ``{"problem", "solution", "image": path | [paths] (optional)}``, optional task
  in ``data.task_key`` or ``accu_reward_method``. Text-only and image rows may be mixed in one file.
- vlm_r1: ``{"id", "image": path | [paths], "conversations": [{"from": "human", "value": "<image>..."},
  {"from": "gpt", "value": ...}], "accu_reward_method" (optional)}``; the last gpt turn is the label.
- r1_reward: ``{"message": JSON string of a chat whose content has {"type": "image", "image": path} parts,
  "question", "answer": ["<answer>1</answer>"]}``; the task is "preference", the label the answer string.
- hf: a Hugging Face dataset row: ``data.input_key`` (a prompt string or a list of chat messages),
  ``data.label_key``, optional ``data.image_key`` (path, list of paths or embedded image) and ``data.task_key``.

Every format may carry a top-level ``response``: a full reference answer (``<think>...</think><answer>...``) that
supervised fine-tuning trains on (Sample.response), while the label stays the answer the reward checks.

Image placeholders: ``<image>`` in a text marks where an image goes. When a text has placeholders their
number must equal the number of images. VLM-R1 rows must always place their images with placeholders; in
the other formats a prompt with no placeholder gets its images before the text (the R1-V convention).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openrlhf.data.errors import RowInvalid
from openrlhf.data.images import ImageError, read_image_size, resolve_image_path, store_embedded_image
from openrlhf.data.sample import Sample
from openrlhf.data.tasks import BOX_TASKS, normalize_task

IMAGE_PLACEHOLDER = "<image>"
FORMATS = ("omnirl", "vlm_r1", "r1_reward", "hf")
VLM_R1_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
CHAT_ROLES = ("system", "user", "assistant")


@dataclass
class RowContext:
    """What a normaliser needs besides the row: where the file is, where images live, the data config."""

    source: str
    dataset_dir: Path
    image_roots: list[Path]
    data_cfg: Any
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def resolve_images(self, refs: list[Any]) -> list[str]:
        """Absolute paths of a row's images, each checked to be a readable image (header only)."""
        paths = []
        for ref in refs:
            try:
                path = self._resolve_one(ref)
                key = str(path)
                if key not in self.sizes:
                    name = ref if isinstance(ref, str) else ref.get("path")
                    self.sizes[key] = read_image_size(path, name)
            except ImageError as exc:
                raise RowInvalid(str(exc)) from None
            paths.append(key)
        return paths

    def _resolve_one(self, ref: Any) -> Path:
        if isinstance(ref, str):
            return resolve_image_path(ref, self.image_roots, self.dataset_dir)
        # A Hugging Face Image value: {"bytes": ..., "path": ...}; a path that exists wins over the bytes.
        if isinstance(ref.get("path"), str) and ref["path"]:
            try:
                return resolve_image_path(ref["path"], self.image_roots, self.dataset_dir)
            except ImageError:
                if not ref.get("bytes"):
                    raise
        if ref.get("bytes"):
            return store_embedded_image(ref["bytes"])
        raise ImageError("embedded image without bytes or a path")


# --------------------------------------------------------------------------- helpers


def require(row: dict[str, Any], key: str) -> Any:
    if key not in row:
        raise RowInvalid(f"missing field '{key}'")
    value = row[key]
    if value is None or (isinstance(value, (str, list)) and not value):
        raise RowInvalid(f"field '{key}' is empty")
    return value


def image_refs(value: Any, key: str) -> list[Any]:
    """A row's image field as a list: absent, null or [] means text-only."""
    if value is None or value == "" or value == []:
        return []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not (isinstance(item, str) and item) and not (
            isinstance(item, dict) and ("bytes" in item or "path" in item)
        ):
            raise RowInvalid(f"field '{key}' must be an image path or a list of image paths, got {item!r}")
    return items


def label_value(value: Any, key: str) -> Any:
    """Labels stay as given; numbers become strings (VLM-R1 solutions may be floats)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (str, list, dict)):
        return value
    raise RowInvalid(f"field '{key}' must be a string, number, list or object, got {type(value).__name__}")


def split_placeholders(text: str) -> list[dict[str, Any]]:
    """``"<image>What is <image>?"`` -> [image, text "What is", image, text "?"] (empty texts dropped)."""
    parts: list[dict[str, Any]] = []
    for i, piece in enumerate(text.split(IMAGE_PLACEHOLDER)):
        if i > 0:
            parts.append({"type": "image"})
        if piece.strip():
            parts.append({"type": "text", "text": piece.strip()})
    return parts


def placeholder_messages(turns: list[tuple[str, str]], num_images: int, *, require_placeholders: bool) -> list[dict]:
    """Chat messages from (role, text) turns; ``<image>`` placeholders become image parts in order."""
    found = sum(text.count(IMAGE_PLACEHOLDER) for _, text in turns)
    if found == 0 and num_images > 0:
        if require_placeholders:
            raise RowInvalid(f"{num_images} image(s) but no {IMAGE_PLACEHOLDER} placeholder in the prompt")
        first_user = next(i for i, (role, _) in enumerate(turns) if role == "user")
        role, text = turns[first_user]
        turns = list(turns)
        turns[first_user] = (role, IMAGE_PLACEHOLDER * num_images + text)
    elif found != num_images:
        raise RowInvalid(f"{found} {IMAGE_PLACEHOLDER} placeholder(s) but {num_images} image(s)")
    messages = []
    for role, text in turns:
        content: Any = split_placeholders(text) if IMAGE_PLACEHOLDER in text else text
        messages.append({"role": role, "content": content})
    return messages


def task_of(row: dict[str, Any], data_cfg: Any) -> str | None:
    for key in (data_cfg.task_key, "accu_reward_method"):
        if row.get(key) is not None:
            try:
                return normalize_task(row[key])
            except ValueError as exc:
                raise RowInvalid(f"field '{key}': {exc}") from None
    return None


def row_id(row: dict[str, Any]) -> str | None:
    return None if row.get("id") is None else str(row["id"])


def _size_pair(value: Any) -> list[int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return [int(value[0]), int(value[1])]
    return None


def add_image_size(sample: Sample, row: dict[str, Any], ctx: RowContext) -> None:
    """Box tasks carry the image size [width, height]: from the row when it has one, else the image header."""
    if sample.task not in BOX_TASKS or not sample.images:
        return
    size = _size_pair(row.get("image_size"))
    if size is None and "width" in row and "height" in row:
        size = _size_pair([row["width"], row["height"]])
    if size is None:
        size = list(ctx.sizes[sample.images[0]])
    sample.label_fields["image_size"] = size


# --------------------------------------------------------------------------- formats


def omnirl_sample(row: dict[str, Any], ctx: RowContext) -> Sample:
    problem = require(row, "problem")
    if not isinstance(problem, str):
        raise RowInvalid(f"field 'problem' must be a string, got {type(problem).__name__}")
    solution = label_value(require(row, "solution"), "solution")
    image_key = "image" if "image" in row or "images" not in row else "images"
    refs = image_refs(row.get(image_key), image_key)
    messages = placeholder_messages([("user", problem)], len(refs), require_placeholders=False)
    return Sample(messages, ctx.resolve_images(refs), solution, task_of(row, ctx.data_cfg), id=row_id(row))


def vlm_r1_sample(row: dict[str, Any], ctx: RowContext) -> Sample:
    conversations = require(row, "conversations")
    if not isinstance(conversations, list) or len(conversations) < 2:
        raise RowInvalid("field 'conversations' must be a list of at least a human turn and a gpt turn")
    turns: list[tuple[str, Any]] = []
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise RowInvalid(f"conversations[{i}] must be an object with 'from' and 'value'")
        role = VLM_R1_ROLES.get(str(turn["from"]).lower())
        if role is None:
            raise RowInvalid(f"conversations[{i}].from is {turn['from']!r} (allowed: {', '.join(VLM_R1_ROLES)})")
        turns.append((role, turn["value"]))
    if turns[-1][0] != "assistant":
        raise RowInvalid("the last turn of 'conversations' must be the gpt answer (the label)")
    label = label_value(turns[-1][1], "conversations[-1].value")
    prompt_turns = turns[:-1]
    for i, (_, text) in enumerate(prompt_turns):
        if not isinstance(text, str):
            raise RowInvalid(f"conversations[{i}].value must be a string, got {type(text).__name__}")
    if not any(role == "user" for role, _ in prompt_turns):
        raise RowInvalid("'conversations' has no human turn before the answer")
    refs = image_refs(row.get("image"), "image")
    messages = placeholder_messages(prompt_turns, len(refs), require_placeholders=True)
    return Sample(messages, ctx.resolve_images(refs), label, task_of(row, ctx.data_cfg), id=row_id(row))


def _chat_messages(raw: Any, key: str, image_column: list[Any]) -> tuple[list[dict], list[Any]]:
    """Normalise a chat (list of {"role", "content"}) and collect its images in order.

    An image part may carry its path ({"type": "image", "image": path}); a bare {"type": "image"} part, or an
    ``<image>`` placeholder in a string content, takes the next image of ``image_column``.
    """
    if not isinstance(raw, list) or not raw:
        raise RowInvalid(f"field '{key}' must be a non-empty list of chat messages")
    column = list(image_column)
    refs: list[Any] = []
    messages = []

    def take_column(i: int) -> Any:
        if not column:
            raise RowInvalid(f"{key}[{i}] has more image parts than the row has images")
        return column.pop(0)

    for i, message in enumerate(raw):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise RowInvalid(f"{key}[{i}] must be an object with 'role' and 'content'")
        if message["role"] not in CHAT_ROLES:
            raise RowInvalid(f"{key}[{i}].role is {message['role']!r} (allowed: {', '.join(CHAT_ROLES)})")
        content = message["content"]
        if isinstance(content, str):
            if IMAGE_PLACEHOLDER in content:
                for _ in range(content.count(IMAGE_PLACEHOLDER)):
                    refs.append(take_column(i))
                content = split_placeholders(content)
        elif isinstance(content, list):
            parts = []
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text" and isinstance(part.get("text"), str):
                    parts.append({"type": "text", "text": part["text"]})
                elif kind == "image":
                    inline = part.get("image") or part.get("path") or part.get("url")
                    refs.append(inline if inline else take_column(i))
                    parts.append({"type": "image"})
                elif kind == "video":
                    raise RowInvalid(f"{key}[{i}].content[{j}] is a video part: videos are not supported")
                else:
                    raise RowInvalid(f"{key}[{i}].content[{j}] must be a text or image part, got {part!r}")
            content = parts
        else:
            raise RowInvalid(f"{key}[{i}].content must be a string or a list of parts")
        messages.append({"role": message["role"], "content": content})
    if not any(m["role"] == "user" for m in messages):
        raise RowInvalid(f"field '{key}' has no user message")
    if column:
        if refs:
            raise RowInvalid(f"{len(refs) + len(column)} image(s) but {len(refs)} image part(s) or placeholder(s)")
        first_user = next(m for m in messages if m["role"] == "user")
        text = first_user["content"]
        first_user["content"] = [{"type": "image"} for _ in column] + (
            [{"type": "text", "text": text}] if isinstance(text, str) else text
        )
        refs = column
    return messages, refs


def r1_reward_sample(row: dict[str, Any], ctx: RowContext) -> Sample:
    message = require(row, "message")
    if isinstance(message, str):
        try:
            message = json.loads(message)
        except json.JSONDecodeError as exc:
            raise RowInvalid(f"field 'message' is not a valid JSON chat: {exc.msg} (column {exc.colno})") from None
    messages, refs = _chat_messages(message, "message", [])
    answer = require(row, "answer")
    if isinstance(answer, list):
        answer = answer[0]
    if not isinstance(answer, str) or not answer.strip():
        raise RowInvalid(f"field 'answer' must be a string or a list of strings, got {row['answer']!r}")
    fields: dict[str, Any] = {}
    if isinstance(row.get("question"), str):
        fields["question"] = row["question"]
    return Sample(messages, ctx.resolve_images(refs), answer, "preference", fields, id=row_id(row))


def hf_sample(row: dict[str, Any], ctx: RowContext) -> Sample:
    cfg = ctx.data_cfg
    prompt = require(row, cfg.input_key)
    label = label_value(require(row, cfg.label_key), cfg.label_key)
    column = image_refs(row.get(cfg.image_key), cfg.image_key)
    if isinstance(prompt, str):
        messages = placeholder_messages([("user", prompt)], len(column), require_placeholders=False)
        refs = column
    else:
        messages, refs = _chat_messages(prompt, cfg.input_key, column)
    return Sample(messages, ctx.resolve_images(refs), label, task_of(row, cfg), id=row_id(row))


NORMALISERS = {"omnirl": omnirl_sample, "vlm_r1": vlm_r1_sample, "r1_reward": r1_reward_sample, "hf": hf_sample}


def row_to_sample(fmt: str, row: dict[str, Any], line: int, ctx: RowContext) -> Sample:
    sample = NORMALISERS[fmt](row, ctx)
    sample.source, sample.line = ctx.source, line
    add_image_size(sample, row, ctx)
    response = row.get("response")
    if response is not None:
        if not isinstance(response, str) or not response.strip():
            raise RowInvalid("field 'response' (the SFT target) must be a non-empty string")
        sample.response = response
    return sample


# --------------------------------------------------------------------------- detection


def guess_row_format(row: dict[str, Any], data_cfg: Any) -> str | None:
    if "conversations" in row:
        return "vlm_r1"
    if "message" in row and "answer" in row:
        return "r1_reward"
    if "problem" in row:
        return "omnirl"
    if data_cfg.input_key in row:
        return "hf"
    return None


def detect_format(rows: list[dict[str, Any]], data_cfg: Any) -> str | None:
    """The format most of the first 50 rows look like, or None when none looks like any."""
    votes = Counter(f for f in (guess_row_format(r, data_cfg) for r in rows[:50]) if f is not None)
    return votes.most_common(1)[0][0] if votes else None


def describe_formats(data_cfg: Any) -> str:
    return (
        "expected keys: 'problem' (omnirl), 'conversations' (vlm_r1), 'message' and 'answer' (r1_reward), "
        f"or data.input_key '{data_cfg.input_key}' (hf); set data.format to choose one of: " + ", ".join(FORMATS)
    )
