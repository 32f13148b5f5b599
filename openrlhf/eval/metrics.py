"""Per-row evaluation scores and their aggregate, by task.

The answer parsers and the IoU are remote_rm's (:mod:`remote_rm.rewards.boxes`,
:mod:`remote_rm.rewards.accuracy`), so evaluation scores a response exactly as the reward service would
(no second copy of a parser):

- rec: IoU of the predicted box (``box``: the "last" box of the answer, VLM-R1's evaluation rule, or the
  "first") with the ground truth, after rescaling from ``input_size`` to ``image_size`` when both are known;
  correct when IoU > ``iou_threshold`` (0.5). Aggregates: accuracy = mean 1[IoU > 0.5], mean_iou = mean IoU.
- counting: 1 if the answer's last number equals the solution (``numeric_accuracy``).
- choice: 1 if the answer's option letter equals the solution's (``choice_accuracy``).
- exact / yes_no: normalised exact match / the same yes-or-no (``exact_match`` / ``yes_no_accuracy``).
- math: 1 if math-verify finds the answer equal to the solution (``math_accuracy``: the reward service's
  extraction and verifier, so held-out accuracy in training and here agree).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any

from openrlhf.utils.errors import UserError
from remote_rm.rewards.accuracy import choice_accuracy, exact_match, numeric_accuracy, yes_no_accuracy
from remote_rm.rewards.boxes import rec_iou

IOU_THRESHOLD = 0.5
BOX_RULES = ("last", "first")
EVAL_TASKS = ("rec", "counting", "choice", "exact", "yes_no", "math")


@dataclass
class EvalRow:
    """One evaluated answer: the question, its ground truth, the raw model output and where it came from."""

    task: str
    question: str
    ground_truth: Any
    model_output: str
    where: str = ""
    image_size: list[int] | None = None  # [width, height] of the original image (rec)
    input_size: list[int] | None = None  # [width, height] the model saw (rec)
    scores: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def math_accuracy(output: str, solution: Any) -> float:
    """1.0 when math-verify finds the answer's last ``<answer>`` (else last ``\\boxed{}``) equal to the
    solution, as the reward service's math accuracy judges a training response; 0.0 without an answer."""
    from remote_rm.rewards.math_accuracy import gold_answer, math_answer, verify_answer

    answer = math_answer(output)
    return 0.0 if answer is None else verify_answer(answer, gold_answer(solution))


def score_row(row: EvalRow, *, box: str = "last", iou_threshold: float = IOU_THRESHOLD) -> dict[str, float]:
    """The row's scores: ``{"correct": 0|1}`` plus ``{"iou": IoU}`` for rec. Fills ``row.scores``."""
    if box not in BOX_RULES:
        raise ValueError(f"box must be one of {BOX_RULES}, got {box!r}")
    output = row.model_output
    if row.task == "rec":
        fields = {}
        if row.image_size and row.input_size:
            fields = {"image_size": row.image_size, "input_size": row.input_size}
        label = SimpleNamespace(solution=row.ground_truth, fields=fields)
        iou = rec_iou(output, label, box=box)
        scores = {"iou": iou, "correct": float(iou > iou_threshold)}
    elif row.task == "counting":
        scores = {"correct": numeric_accuracy(output, row.ground_truth)}
    elif row.task == "choice":
        scores = {"correct": choice_accuracy(output, row.ground_truth)}
    elif row.task == "exact":
        scores = {"correct": exact_match(output, row.ground_truth)}
    elif row.task == "yes_no":
        scores = {"correct": yes_no_accuracy(output, row.ground_truth)}
    elif row.task == "math":
        scores = {"correct": math_accuracy(output, row.ground_truth)}
    else:
        where = f"{row.where}: " if row.where else ""
        raise UserError(f"{where}task {row.task!r} has no evaluation metric (supported: {', '.join(EVAL_TASKS)})")
    row.scores = scores
    return scores


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize_rows(rows: list[EvalRow]) -> dict[str, Any]:
    """Aggregate scored rows: per task {rows, accuracy (+ mean_iou for rec)} and the overall accuracy.

    accuracy = (1/N) sum_i correct_i; rec's correct_i = 1[IoU_i > 0.5]; mean_iou = (1/N) sum_i IoU_i.
    """
    tasks: dict[str, dict[str, Any]] = {}
    for task in sorted({r.task for r in rows}):
        mine = [r for r in rows if r.task == task]
        entry: dict[str, Any] = {"rows": len(mine), "accuracy": _mean([r.scores["correct"] for r in mine])}
        if task == "rec":
            entry["mean_iou"] = _mean([r.scores["iou"] for r in mine])
        tasks[task] = entry
    return {
        "rows": len(rows),
        "accuracy": _mean([r.scores["correct"] for r in rows]),
        "tasks": tasks,
    }
