"""OVD (open-vocabulary detection) reward: COCO mAP of the answer's labelled boxes, via pycocotools.

The answer is a JSON list of ``{"bbox_2d": [x1, y1, x2, y2], "label": "name"}`` objects, in a
```json fence or bare. Ground truth is the same kind of list (in the label's ``solution``).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from collections.abc import Sequence

import numpy as np

from remote_rm.rewards.boxes import answer_region, rescale_box

_FENCE_RE = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.S)
_FLAT_OBJECT_RE = re.compile(r"\{[^{}]*\}")

Detection = tuple[tuple[float, float, float, float], str]


def _as_detection(obj: object) -> Detection | None:
    if not isinstance(obj, dict):
        return None
    box, label = obj.get("bbox_2d"), obj.get("label")
    if not isinstance(label, str) or not isinstance(box, (list, tuple)) or len(box) != 4:
        return None
    try:
        coords = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in coords):
        return None
    return coords, " ".join(label.lower().split())  # type: ignore[return-value]


def parse_detections(text: str, limit: int = 1000) -> list[Detection]:
    """Labelled boxes in ``text``: the JSON list inside a ```json fence (or the text itself), else each flat
    ``{...}`` object that parses; objects without a 4-number ``bbox_2d`` and a string ``label`` are skipped.
    """
    fence = _FENCE_RE.search(text)
    body = fence.group(1) if fence else text
    start, end = body.find("["), body.rfind("]")
    candidates: list[object] = []
    if 0 <= start < end:
        try:
            parsed = json.loads(body[start : end + 1])
            candidates = parsed if isinstance(parsed, list) else [parsed]
        except (ValueError, RecursionError):
            candidates = []
    if not candidates:
        for match in _FLAT_OBJECT_RE.finditer(body):
            try:
                candidates.append(json.loads(match.group(0)))
            except ValueError:
                continue
            if len(candidates) >= limit:
                break
    out = [det for det in map(_as_detection, candidates[:limit]) if det is not None]
    return out


def _to_coco(boxes: Sequence[Detection], categories: dict[str, int], with_score: bool) -> list[dict]:
    anns = []
    for i, ((x1, y1, x2, y2), label) in enumerate(boxes, 1):
        w, h = max(0.0, x2 - x1), max(0.0, y2 - y1)
        ann = {"id": i, "image_id": 1, "category_id": categories[label], "bbox": [x1, y1, w, h], "area": w * h}
        if with_score:
            ann["score"] = 1.0
        else:
            ann["iscrowd"] = 0
        anns.append(ann)
    return anns


def coco_map(predictions: Sequence[Detection], ground_truth: Sequence[Detection]) -> float:
    """COCO mAP@[.50:.05:.95] of one image (pycocotools COCOeval, area "all", 100 detections).

    mAP = mean over IoU thresholds t in {.50, .55, ..., .95} and over the ground-truth categories of
    the 101-point interpolated precision. Predictions carry no confidence, so all score 1 (ties keep
    answer order). No ground truth: 1 if there are no predictions either, else 0. No predictions: 0.
    """
    if not ground_truth:
        return 1.0 if not predictions else 0.0
    if not predictions:
        return 0.0
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    names = sorted({label for _, label in ground_truth} | {label for _, label in predictions})
    categories = {name: i for i, name in enumerate(names, 1)}
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        gt = COCO()
        gt.dataset = {
            "images": [{"id": 1}],
            "categories": [{"id": i, "name": n} for n, i in categories.items()],
            "annotations": _to_coco(ground_truth, categories, with_score=False),
        }
        gt.createIndex()
        dt = gt.loadRes(_to_coco(predictions, categories, with_score=True))
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.params.catIds = sorted({categories[label] for _, label in ground_truth})
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # [T, R, K], area "all", maxDets 100
    valid = precision[precision > -1]
    return float(np.mean(valid)) if valid.size else 0.0


def ovd_map(
    response: str,
    label: object,
    answer_tag: str = "answer",
    require_tag: bool = False,
    max_predictions: int = 100,
) -> float:
    """OVD reward: mAP * min(1, n_gt / n_pred), so listing many boxes does not pay.

    Predictions come from :func:`parse_detections` on the answer region (rescaled from ``input_size``
    to ``image_size`` when the label has both); the ground truth is the label's ``solution`` (a list of
    objects or its JSON text). Unparseable answer or ground truth: 0.
    """
    solution = getattr(label, "solution", label)
    if isinstance(solution, str):
        truth = parse_detections(solution)
    elif isinstance(solution, list):
        truth = [det for det in map(_as_detection, solution) if det is not None]
    else:
        return 0.0
    region = answer_region(response, answer_tag, require_tag)
    if region is None:
        return 0.0
    preds = parse_detections(region, limit=10_000)
    n_pred = len(preds)
    fields = getattr(label, "fields", {}) or {}
    if fields.get("input_size") and fields.get("image_size"):
        preds = [(rescale_box(box, fields["input_size"], fields["image_size"]), name) for box, name in preds]
    if not truth:
        return 1.0 if n_pred == 0 else 0.0
    if n_pred == 0:
        return 0.0
    return coco_map(preds[:max_predictions], truth) * min(1.0, len(truth) / n_pred)
