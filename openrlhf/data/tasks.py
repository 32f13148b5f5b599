"""Reward task names: the project's own (``Sample.task``) and the VLM-R1 names they are mapped from.

VLM-R1 rows name their reward by ``accu_reward_method``; the project's tasks are those in sample.TASKS.

| VLM-R1 ``accu_reward_method``      | Sample.task  | reward                                          |
|------------------------------------|--------------|-------------------------------------------------|
| default, iou                       | rec          | IoU of the answered box with the labelled box    |
| map, od, ovd                       | ovd          | detection mAP over labelled boxes                |
| math, accuracy                     | math         | math-verify equivalence of the answer            |
| mcq, choice, multiple_choice       | choice       | the chosen option letter                         |
| yes_no                             | yes_no       | yes/no agreement                                 |
| count, counting                    | counting     | the counted number                               |
| exact, exact_match                 | exact        | normalised string equality                       |
| llm, judge, generative             | generative   | an LLM judge                                     |
| preference                         | preference   | R1-Reward: the preferred response index          |

"default" maps to "rec" because VLM-R1's REC recipe (grpo_rec.py), where the name comes from, scores
with IoU. A task already in the project's list is kept as it is; anything else is an error.
"""

from __future__ import annotations

from openrlhf.data.sample import TASKS

VLM_R1_TASKS: dict[str, str] = {
    "default": "rec",
    "iou": "rec",
    "map": "ovd",
    "od": "ovd",
    "math": "math",
    "accuracy": "math",
    "mcq": "choice",
    "multiple_choice": "choice",
    "count": "counting",
    "exact_match": "exact",
    "llm": "generative",
    "judge": "generative",
}

# Tasks whose labels are boxes in image pixels: the row carries the image size so boxes can be rescaled.
BOX_TASKS = ("rec", "ovd")


def normalize_task(name: object) -> str:
    """Map a row's task / accu_reward_method to a Sample.task; raise ValueError naming the allowed names."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"task must be a non-empty string, got {name!r}")
    key = name.strip().lower()
    if key in TASKS:
        return key
    if key in VLM_R1_TASKS:
        return VLM_R1_TASKS[key]
    allowed = ", ".join(list(TASKS) + sorted(set(VLM_R1_TASKS) - set(TASKS)))
    raise ValueError(f"unknown task {name!r} (allowed: {allowed})")
