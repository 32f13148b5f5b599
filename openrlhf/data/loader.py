"""load_samples: data files (or VLM-R1 data_config YAMLs) -> Samples, with every bad row named FILE:LINE.

Per file: read raw rows, apply the file's sampling strategy to the raw rows, detect the format (or use
``data.format``), normalise each row (a row with more than ``data.max_images_per_prompt`` images is invalid). Bad rows are collected over all files; with ``data.on_invalid: error``
the load then fails with all of them listed, with ``skip`` they are dropped, counted in the log and returned
in ``LoadResult.skipped``. ``data.max_samples`` keeps the first N samples. Rows are not shuffled here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openrlhf.data.data_config import DatasetEntry, expand_paths
from openrlhf.data.errors import DatasetError, RowError, RowInvalid
from openrlhf.data.formats import RowContext, describe_formats, detect_format, row_to_sample
from openrlhf.data.readers import read_rows
from openrlhf.data.sample import Sample

logger = logging.getLogger(__name__)


@dataclass
class FileInfo:
    """One file as loaded: the name used in messages, its format, and how many rows were considered."""

    path: str
    format: str
    rows: int


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    skipped: list[RowError] = field(default_factory=list)
    files: list[FileInfo] = field(default_factory=list)


def _load_entry(entry: DatasetEntry, data_cfg: Any, seed: int, result: LoadResult) -> list[RowError]:
    rows = entry.strategy.apply(read_rows(entry.path), seed=seed)
    fmt = entry.format
    if fmt == "auto":
        fmt = detect_format([r.value for r in rows if r.value is not None], data_cfg) or ""
        if not fmt:
            if all(r.value is None for r in rows):
                errors = [RowError(entry.display, r.line, r.error or "") for r in rows]
                result.files.append(FileInfo(entry.display, "unknown", len(rows)))
                return errors
            first = next(r.value for r in rows if r.value is not None)
            raise DatasetError(
                f"{entry.display}: cannot tell the dataset format from the row keys {sorted(first)[:12]}; "
                + describe_formats(data_cfg)
            )
    roots = ([entry.image_folder] if entry.image_folder else []) + [Path(r) for r in data_cfg.image_roots]
    ctx = RowContext(entry.display, entry.path.parent if entry.path.is_file() else entry.path, roots, data_cfg)
    errors = []
    for row in rows:
        if row.value is None:
            errors.append(RowError(entry.display, row.line, row.error or "unreadable row"))
            continue
        try:
            sample = row_to_sample(fmt, row.value, row.line, ctx)
            limit = getattr(data_cfg, "max_images_per_prompt", 0)
            if limit and len(sample.images) > limit:
                raise RowInvalid(f"{len(sample.images)} images, more than data.max_images_per_prompt={limit}")
            result.samples.append(sample)
        except RowInvalid as exc:
            errors.append(RowError(entry.display, row.line, str(exc)))
    result.files.append(FileInfo(entry.display, fmt, len(rows)))
    return errors


def load_samples(paths: list[str], data_cfg: Any, *, seed: int = 42) -> LoadResult:
    """Load and normalise every row of ``paths`` into Samples (see the module docstring for the rules).

    Raises DatasetError (a ValueError) for a file that cannot be read, and, with ``data_cfg.on_invalid ==
    "error"``, for invalid rows: its message lists them as ``FILE:LINE: reason``.
    """
    result = LoadResult()
    errors: list[RowError] = []
    for entry in expand_paths(paths, data_cfg):
        file_errors = _load_entry(entry, data_cfg, seed, result)
        if file_errors and data_cfg.on_invalid == "skip":
            logger.warning(
                "%s: skipped %d invalid row(s) of %d (first: %s)",
                entry.display,
                len(file_errors),
                result.files[-1].rows,
                file_errors[0],
            )
        errors.extend(file_errors)
    if errors and data_cfg.on_invalid == "error":
        raise DatasetError.from_rows(errors)
    result.skipped = errors
    if data_cfg.max_samples:
        result.samples = result.samples[: data_cfg.max_samples]
    return result
