"""Boxes in model answers, IoU, and the REC (referring expression comprehension) reward.

A box is ``[x1, y1, x2, y2]`` in pixels (ints or floats), written bare or inside JSON such as
``{"bbox_2d": [x1, y1, x2, y2], "label": "..."}`` or a list of such objects, fenced or not. The
parser takes every bracketed list of exactly four numbers, in order of appearance, which covers all
of these forms with one linear-time pattern.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from remote_rm.rewards.extract import tagged

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,3})?"
_BOX_RE = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")

Box = tuple[float, float, float, float]


def parse_boxes(text: str, limit: int = 1000) -> list[Box]:
    """Every ``[x1, y1, x2, y2]`` of finite numbers in ``text``, in order, at most ``limit`` of them."""
    out: list[Box] = []
    for match in _BOX_RE.finditer(text):
        box = tuple(float(v) for v in match.groups())
        if all(math.isfinite(v) for v in box):
            out.append(box)  # type: ignore[arg-type]
            if len(out) >= limit:
                break
    return out


def last_box(text: str) -> Box | None:
    """The last ``[x1, y1, x2, y2]`` of finite numbers in ``text``, or None (one linear pass)."""
    last = None
    for match in _BOX_RE.finditer(text):
        box = tuple(float(v) for v in match.groups())
        if all(math.isfinite(v) for v in box):
            last = box
    return last  # type: ignore[return-value]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Continuous intersection over union of two ``[x1, y1, x2, y2]`` boxes.

    IoU = |a ∩ b| / (|a| + |b| - |a ∩ b|), with |box| = max(0, x2 - x1) * max(0, y2 - y1) and the
    intersection's sides clipped at 0. Degenerate boxes (zero or negative area) give 0.
    """
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = area_a + area_b - inter
    if not (union > 0.0) or not math.isfinite(union):
        return 0.0
    return min(1.0, max(0.0, inter / union))


def rescale_box(box: Sequence[float], input_size: Sequence[float], image_size: Sequence[float]) -> Box:
    """Map a box from the model's input resolution to the original image.

    x' = x * W_image / W_input, y' = y * H_image / H_input (sizes are [width, height]).
    """
    sx = float(image_size[0]) / float(input_size[0])
    sy = float(image_size[1]) / float(input_size[1])
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def answer_region(response: str, answer_tag: str = "answer", require_tag: bool = False) -> str | None:
    """Where boxes are read: the last ``<answer>`` content, else (unless ``require_tag``) the whole response."""
    answer = tagged(response, answer_tag)
    if answer is not None:
        return answer
    return None if require_tag else response


def gt_box(solution: object) -> Box | None:
    """The ground-truth box of a REC label: a list of 4 numbers, or text holding one."""
    if isinstance(solution, (list, tuple)) and len(solution) == 4:
        try:
            box = tuple(float(v) for v in solution)
        except (TypeError, ValueError):
            return None
        return box if all(math.isfinite(v) for v in box) else None  # type: ignore[return-value]
    if isinstance(solution, str):
        boxes = parse_boxes(solution, limit=1)
        return boxes[0] if boxes else None
    if isinstance(solution, dict) and "bbox_2d" in solution:
        return gt_box(solution["bbox_2d"])
    return None


def rec_iou(
    response: str,
    label: object,
    box: str = "first",
    threshold: float | None = None,
    answer_tag: str = "answer",
    require_tag: bool = False,
) -> float:
    """REC reward: IoU of the predicted box with the ground truth.

    The predicted box is the ``box`` ("first" or "last") box of :func:`answer_region`, rescaled by
    :func:`rescale_box` when the label has both ``input_size`` and ``image_size``. Returns the
    continuous IoU, or with ``threshold`` the hard reward 1[IoU > threshold]. No parseable box: 0.
    """
    if box not in ("first", "last"):
        raise ValueError(f"rec_iou: box must be 'first' or 'last', got {box!r}")
    solution = getattr(label, "solution", label)
    target = gt_box(solution)
    region = answer_region(response, answer_tag, require_tag)
    if target is None or region is None:
        return 0.0
    if box == "first":
        found = parse_boxes(region, limit=1)
        pred = found[0] if found else None
    else:
        pred = last_box(region)
    if pred is None:
        return 0.0
    fields = getattr(label, "fields", {}) or {}
    if fields.get("input_size") and fields.get("image_size"):
        pred = rescale_box(pred, fields["input_size"], fields["image_size"])
    iou = box_iou(pred, target)
    if threshold is not None:
        return float(iou > threshold)
    return iou
