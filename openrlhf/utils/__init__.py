"""Helpers under the names OpenRLHF's ``openrlhf.utils`` gives them, so reward functions written for
OpenRLHF (``from openrlhf.utils import extract_boxed_answer, grade_answer``) run here unchanged."""

from openrlhf.utils.math_answers import extract_boxed_answer, grade_answer

__all__ = ["extract_boxed_answer", "grade_answer"]
