"""Expand the paths of ``data.train_paths`` into dataset entries, reading VLM-R1 data_config YAML files.

A data_config YAML lists several files, each with its own image folder and sampling strategy::

    datasets:
      - json_path: refcoco_train.jsonl     # relative paths: against the YAML's folder, then the working dir
        image_folder: coco/train2014       # optional; searched before data.image_roots
        sampling_strategy: random:10%      # optional: all | first:N | end:N | random:N | random:P%
        format: vlm_r1                     # optional; default data.format
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml

from openrlhf.data.errors import DatasetError
from openrlhf.data.readers import YAML_SUFFIXES
from openrlhf.data.sampling import SamplingStrategy, parse_sampling_strategy

ENTRY_KEYS = ("json_path", "image_folder", "sampling_strategy", "format")


@dataclass
class DatasetEntry:
    """One data file to read: its path, the name used in messages, its own image folder, strategy and format."""

    path: Path
    display: str
    image_folder: Path | None
    strategy: SamplingStrategy
    format: str


def _allowed_formats(data_cfg: Any) -> tuple[str, ...]:
    return tuple(get_args(type(data_cfg).model_fields["format"].annotation))


def _locate(value: str, base: Path) -> Path | None:
    path = Path(value).expanduser()
    if path.is_absolute():
        return path if path.exists() else None
    for candidate in (base / path, path):
        if candidate.exists():
            return candidate
    return None


def read_data_config(path: Path, data_cfg: Any) -> list[DatasetEntry]:
    """Entries of a VLM-R1 data_config YAML; raises DatasetError naming the file and the entry."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("datasets"), list) or not config["datasets"]:
        raise DatasetError(f"{path}: a data_config YAML needs a non-empty list under 'datasets:'")
    entries = []
    for i, item in enumerate(config["datasets"]):
        where = f"{path}: datasets[{i}]"
        if not isinstance(item, dict):
            raise DatasetError(f"{where} must be a mapping with json_path")
        unknown = sorted(set(item) - set(ENTRY_KEYS))
        if unknown:
            raise DatasetError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(ENTRY_KEYS)})")
        if not isinstance(item.get("json_path"), str):
            raise DatasetError(f"{where}: missing json_path")
        data_path = _locate(item["json_path"], path.parent)
        if data_path is None:
            raise DatasetError(
                f"{where}.json_path: '{item['json_path']}' not found (next to {path} or in the working dir)"
            )
        image_folder = None
        if item.get("image_folder") is not None:
            image_folder = _locate(str(item["image_folder"]), path.parent)
            if image_folder is None or not image_folder.is_dir():
                raise DatasetError(f"{where}.image_folder: folder '{item['image_folder']}' not found")
        try:
            strategy = parse_sampling_strategy(str(item.get("sampling_strategy", "all")))
        except ValueError as exc:
            raise DatasetError(f"{where}.sampling_strategy: {exc}") from None
        fmt = item.get("format", data_cfg.format)
        if fmt not in _allowed_formats(data_cfg):
            raise DatasetError(f"{where}.format: {fmt!r} (allowed: {', '.join(_allowed_formats(data_cfg))})")
        entries.append(DatasetEntry(data_path, str(data_path), image_folder, strategy, fmt))
    return entries


def expand_paths(paths: list[str], data_cfg: Any) -> list[DatasetEntry]:
    """Data files and data_config YAMLs -> entries; plain files use data.sampling_strategy and data.format."""
    if isinstance(paths, (str, Path)):
        paths = [str(paths)]
    if not paths:
        raise DatasetError("no data paths given (set data.train_paths, or pass files to the command)")
    default_strategy = parse_sampling_strategy(data_cfg.sampling_strategy)
    entries: list[DatasetEntry] = []
    for text in paths:
        path = Path(text).expanduser()
        if path.suffix.lower() in YAML_SUFFIXES:
            if not path.is_file():
                raise DatasetError(f"{text}: no such file")
            entries.extend(read_data_config(path, data_cfg))
        else:
            entries.append(DatasetEntry(path, str(text), None, default_strategy, data_cfg.format))
    return entries
