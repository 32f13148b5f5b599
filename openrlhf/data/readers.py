"""Read a data file into raw rows, each with its 1-based line, before any format is applied.

- ``.jsonl``: one JSON object a line; a line that is not JSON becomes a row error, the others still load.
- ``.json``: a JSON list of objects (the line of a row is the line its object starts on), a single object,
  or JSON lines saved under a .json name.
- ``.parquet`` and folders saved with ``datasets.Dataset.save_to_disk``: read with Hugging Face datasets;
  the line of a row is its 1-based index. Image columns come back as {"bytes", "path"} dicts, not decoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openrlhf.data.errors import DatasetError

JSON_SUFFIXES = (".json", ".jsonl")
TABLE_SUFFIXES = (".parquet",)
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class RawRow:
    """A row as read: ``value`` is the JSON object, or None with ``error`` saying why it could not be read."""

    line: int
    value: dict[str, Any] | None = None
    error: str | None = None


def _json_error(exc: json.JSONDecodeError) -> str:
    return f"not valid JSON: {exc.msg} (column {exc.colno})"


def _object_or_error(line: int, value: Any) -> RawRow:
    if isinstance(value, dict):
        return RawRow(line, value)
    return RawRow(line, error=f"a row must be a JSON object, got {type(value).__name__}")


def read_jsonl_text(text: str) -> list[RawRow]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(_object_or_error(number, json.loads(line)))
        except json.JSONDecodeError as exc:
            rows.append(RawRow(number, error=_json_error(exc)))
    return rows


def read_json_list_text(text: str) -> list[RawRow]:
    """Decode a JSON list element by element, so each row knows the line it starts on.

    A syntax error ends the file: it becomes a row error at the line where the broken row starts.
    """
    decoder = json.JSONDecoder()
    rows: list[RawRow] = []
    counted_to, line = 0, 1

    def line_at(pos: int) -> int:
        nonlocal counted_to, line
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        return line

    def skip_space(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    pos = skip_space(text.index("[") + 1)
    if pos < len(text) and text[pos] == "]":
        return rows
    while True:
        pos = skip_space(pos)
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            reason = (
                f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; the rest of the file was not read"
            )
            rows.append(RawRow(line_at(pos), error=reason))
            return rows
        rows.append(_object_or_error(line_at(pos), value))
        pos = skip_space(end)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        if pos < len(text) and text[pos] == "]":
            return rows
        reason = "not valid JSON: expected ',' or ']' after a list item; the rest of the file was not read"
        rows.append(RawRow(line_at(min(pos, len(text))), error=reason))
        return rows


def read_json_file(path: Path) -> list[RawRow]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    first = text.lstrip()[:1]
    if path.suffix == ".jsonl" or first not in ("[", "{"):
        return read_jsonl_text(text)
    if first == "[":
        return read_json_list_text(text)
    try:  # one object for the whole file, else JSON lines under a .json name
        start_line = text[: len(text) - len(text.lstrip())].count("\n") + 1
        return [_object_or_error(start_line, json.loads(text))]
    except json.JSONDecodeError:
        return read_jsonl_text(text)


def _undecoded_images(dataset: Any) -> Any:
    """Cast Image columns (and lists of images) to undecoded {"bytes", "path"} dicts."""
    from datasets import Image, List, Sequence

    for name, feature in dataset.features.items():
        if isinstance(feature, Image):
            dataset = dataset.cast_column(name, Image(decode=False))
        elif isinstance(feature, (List, Sequence)) and isinstance(getattr(feature, "feature", None), Image):
            dataset = dataset.cast_column(name, List(Image(decode=False)))
    return dataset


def read_hf_dataset(path: Path) -> list[RawRow]:
    """A parquet file or a save_to_disk folder, through Hugging Face datasets."""
    import datasets

    datasets.disable_progress_bars()
    try:
        if path.is_dir():
            dataset = datasets.load_from_disk(str(path))
            if isinstance(dataset, datasets.DatasetDict):
                if "train" not in dataset:
                    raise DatasetError(f"{path}: a DatasetDict without a 'train' split (splits: {list(dataset)})")
                dataset = dataset["train"]
        else:
            dataset = datasets.load_dataset("parquet", data_files=str(path), split="train")
    except DatasetError:
        raise
    except Exception as exc:  # datasets raises many types for unreadable files
        raise DatasetError(f"{path}: cannot be read as a Hugging Face dataset: {exc}") from None
    dataset = _undecoded_images(dataset)
    return [RawRow(index, dict(row)) for index, row in enumerate(dataset, start=1)]


def is_saved_dataset_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def read_rows(path: Path) -> list[RawRow]:
    """Raw rows of one data file; raises DatasetError for a file that cannot be read at all."""
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    if path.is_dir():
        if is_saved_dataset_dir(path):
            return read_hf_dataset(path)
        raise DatasetError(f"{path}: a folder; give data files, or a dataset saved with datasets' save_to_disk")
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        return read_json_file(path)
    if suffix in TABLE_SUFFIXES:
        return read_hf_dataset(path)
    allowed = ", ".join(JSON_SUFFIXES + TABLE_SUFFIXES + YAML_SUFFIXES)
    raise DatasetError(f"{path}: unsupported file type '{suffix or path.name}' (allowed: {allowed})")
