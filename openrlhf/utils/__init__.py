"""The lowest layer: helpers that import nothing else of the package.

Its own names are OpenRLHF's ``openrlhf.utils`` helpers, so reward functions written for OpenRLHF
(``from openrlhf.utils import extract_boxed_answer, grade_answer``) run here unchanged. The modules: errors.py
(UserError, the user-facing error), actor_calls.py (calling Ray actors and in-driver workers alike), threads.py
(torch threads per process), loopback_server.py, math_answers.py.
"""

from openrlhf.utils.math_answers import extract_boxed_answer, grade_answer

__all__ = ["extract_boxed_answer", "grade_answer"]
