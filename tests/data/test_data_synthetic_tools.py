"""The calculator demo's task (openrlhf/data/synthetic_tools.py): held-out products unseen in training, and tool
targets the built-in tool environment would produce turn for turn."""

from __future__ import annotations

import json

import pytest

from openrlhf.data.synthetic_tools import write_products_task
from openrlhf.rollout.tool_agent import run_call
from openrlhf.rollout.tools import BUILTIN_TOOLS, ToolContext
from openrlhf.utils.tool_protocol import parse_tool_calls, tool_response_turn


def test_products_task_rows_and_tool_targets(tmp_path):
    paths = write_products_task(tmp_path, 400, 50, seed=3, tool_share=0.45)
    train, heldout, sft = (json.loads(paths[k].read_text()) for k in ("train", "heldout", "sft"))
    assert (len(train), len(heldout), len(sft)) == (400, 50, 400)
    assert not {r["problem"] for r in heldout} & {r["problem"] for r in train}
    tool_rows = [r for r in sft if r["response"].startswith("<tool_call>")]
    assert 0.35 < len(tool_rows) / len(sft) < 0.55
    for row in sft:
        a, b = (int(x) for x in row["problem"].removeprefix("What is ").removesuffix("?").split(" * "))
        assert row["solution"] == str(a * b) and 100 <= a <= 999 and 100 <= b <= 999
        assert row["response"].endswith(f"<answer>{a * b}</answer>")
    for row in tool_rows:  # the call, then exactly the turn the environment writes for the calculator's answer
        call_text, rest = row["response"].split("<|im_end|>", 1)
        (call,) = parse_tool_calls(call_text)
        answer = run_call(call, BUILTIN_TOOLS, ToolContext())
        assert rest == tool_response_turn([answer.text]) + f"<answer>{row['solution']}</answer>"
    assert (
        write_products_task(tmp_path / "again", 400, 50, seed=3, tool_share=0.45)["sft"].read_text()
        == paths["sft"].read_text()
    )
    with pytest.raises(ValueError, match="tool_share must be in"):
        write_products_task(tmp_path, 10, 2, tool_share=1.5)
