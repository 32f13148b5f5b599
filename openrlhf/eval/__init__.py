"""Evaluation: REC (accuracy at IoU > 0.5, mean IoU), counting, choice and exact-answer accuracy.

- :mod:`openrlhf.eval.metrics`: per-row scores and the aggregated report (reusing remote_rm's parsers).
- :mod:`openrlhf.eval.offline`: score saved model outputs (VLM-R1's eval log format) without a model.
- :mod:`openrlhf.eval.checkpoint`: generate greedy answers of a checkpoint over a dataset and score them.
"""

from openrlhf.eval.metrics import EvalRow, score_row, summarize_rows
from openrlhf.eval.offline import load_outputs_file, score_outputs_file

__all__ = ["EvalRow", "load_outputs_file", "score_outputs_file", "score_row", "summarize_rows"]
