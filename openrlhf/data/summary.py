"""Per-file statistics of a load, for ``openrlhf-data inspect``: rows, text/image rows, images a row, tasks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from openrlhf.data.errors import RowError
from openrlhf.data.loader import LoadResult


@dataclass
class FileSummary:
    path: str
    format: str
    rows: int = 0
    valid: int = 0
    text_only: int = 0
    with_images: int = 0
    images_per_row: Counter = field(default_factory=Counter)
    tasks: Counter = field(default_factory=Counter)
    label_examples: list[str] = field(default_factory=list)
    invalid: list[RowError] = field(default_factory=list)


def _short(value: object, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\\n")
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def summarize(result: LoadResult, examples: int = 3) -> list[FileSummary]:
    """One FileSummary per loaded file, in load order; ``examples`` labels shown per file."""
    by_path = {info.path: FileSummary(info.path, info.format, info.rows) for info in result.files}
    for sample in result.samples:
        summary = by_path[sample.source]
        summary.valid += 1
        summary.images_per_row[len(sample.images)] += 1
        if sample.images:
            summary.with_images += 1
        else:
            summary.text_only += 1
        summary.tasks[sample.task or "(none)"] += 1
        if len(summary.label_examples) < examples:
            summary.label_examples.append(_short(sample.label))
    for error in result.skipped:
        by_path[error.file].invalid.append(error)
    return list(by_path.values())


def format_counter(counter: Counter) -> str:
    return ", ".join(f"{key} x{count}" for key, count in sorted(counter.items(), key=lambda kv: str(kv[0]))) or "-"


def render_summary(summary: FileSummary) -> list[str]:
    """Plain-text lines for one file; invalid rows come last, one ``FILE:LINE: reason`` a line."""
    lines = [
        f"== {summary.path} (format: {summary.format})",
        f"  rows: {summary.rows}  valid: {summary.valid}  invalid: {len(summary.invalid)}",
        f"  text-only rows: {summary.text_only}  image rows: {summary.with_images}",
        f"  images per row: {format_counter(summary.images_per_row)}",
        f"  tasks: {format_counter(summary.tasks)}",
        f"  label examples: {', '.join(summary.label_examples) or '-'}",
    ]
    if summary.invalid:
        lines.append("  invalid rows:")
        lines.extend(str(err) for err in summary.invalid)
    return lines
