"""The placement and memory planner; the code lives in :mod:`openrlhf.plan` (this module re-exports it)."""

from openrlhf.plan import *  # noqa: F403
from openrlhf.plan import __all__  # noqa: F401
