"""Score saved model outputs without a model: VLM-R1's evaluation log format, or our own eval outputs.

The file is a JSON object ``{"results": [{"question", "ground_truth", "model_output", ...}, ...]}`` (VLM-R1
writes ``"accuracy"`` beside it, in percent; rows may carry ``"correct"``, its own verdict). A row may name
its ``"task"`` (default ``rec``) and, for rec, ``"image_size"`` / ``"input_size"`` ([width, height]).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openrlhf.eval.metrics import IOU_THRESHOLD, EvalRow, score_row, summarize_rows
from openrlhf.utils.errors import UserError

REQUIRED_KEYS = ("question", "ground_truth", "model_output")


def _size(value: Any, where: str, key: str) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return [int(value[0]), int(value[1])]
    raise UserError(f"{where}: {key} must be [width, height], got {value!r}")


def read_outputs_json(path: str | Path, kind: str) -> dict[str, Any]:
    """A saved outputs file: a JSON object with a "results" list (``kind`` names the expected format in errors)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--from-outputs {path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise UserError(f'{path}: expected a JSON object with a "results" list ({kind})')
    return data


def load_outputs_file(path: str | Path, default_task: str = "rec") -> tuple[list[EvalRow], dict[str, Any]]:
    """The rows of an outputs file and its other top-level fields; errors name the file, row and key."""
    path = Path(path)
    data = read_outputs_json(path, "VLM-R1 eval log format")
    rows = []
    for i, item in enumerate(data["results"]):
        where = f"{path}: results[{i}]"
        if not isinstance(item, dict):
            raise UserError(f"{where}: expected an object, got {type(item).__name__}")
        missing = [k for k in REQUIRED_KEYS if k not in item]
        if missing:
            raise UserError(f"{where}: missing key(s) {missing} (has {sorted(item)})")
        if not isinstance(item["model_output"], str):
            raise UserError(f"{where}: model_output must be text, got {type(item['model_output']).__name__}")
        rows.append(
            EvalRow(
                task=str(item.get("task") or default_task),
                question=str(item["question"]),
                ground_truth=item["ground_truth"],
                model_output=item["model_output"],
                where=where,
                image_size=_size(item.get("image_size"), where, "image_size"),
                input_size=_size(item.get("input_size"), where, "input_size"),
            )
        )
    meta = {k: v for k, v in data.items() if k != "results"}
    meta["_published_correct"] = [item.get("correct") for item in data["results"]]
    return rows, meta


def published_accuracy(value: Any) -> float | None:
    """VLM-R1 writes accuracy in percent (90.2); return it as a fraction (0.902)."""
    if not isinstance(value, (int, float)):
        return None
    return float(value) / 100.0 if value > 1.0 else float(value)


def score_outputs_file(
    path: str | Path, *, box: str = "last", iou_threshold: float = IOU_THRESHOLD, default_task: str = "rec"
) -> dict[str, Any]:
    """Score every row of an outputs file; the report holds the summary, the file's published accuracy,
    how many rows disagree with the file's own ``correct`` verdicts, and the per-row scores."""
    rows, meta = load_outputs_file(path, default_task)
    for row in rows:
        score_row(row, box=box, iou_threshold=iou_threshold)
    report: dict[str, Any] = {"source": str(path), "box": box, "iou_threshold": iou_threshold}
    report.update(summarize_rows(rows))
    report["published_accuracy"] = published_accuracy(meta.get("accuracy"))
    verdicts = meta["_published_correct"]
    judged = [(bool(v), r.scores["correct"] > 0) for v, r in zip(verdicts, rows, strict=True) if v is not None]
    if judged:
        report["disagreements_with_published_correct"] = sum(a != b for a, b in judged)
    report["per_row"] = [{"where": r.where, **r.scores} for r in rows]
    return report
