"""The calculator demo's task: products of two 3-digit numbers, which a tiny model cannot work out in its head.

Rows are OmniRL JSON lists ``{"problem": "What is 123 * 456?", "solution": "56088", "task": "math"}``; held-out
products never share their pair of factors with a training one. The SFT file repeats the training rows with a
``response`` (the SFT target) in one of two forms:

- with probability ``tool_share`` the calculator is called, and after its answer the result is given::

      <tool_call>{"name": "calculator", "arguments": {"expression": "123 * 456"}}</tool_call><|im_end|>
      <|im_start|>user
      <tool_response>
      56088
      </tool_response><|im_end|>
      <|im_start|>assistant
      <answer>56088</answer>

  (the protocol of openrlhf/utils/tool_protocol.py, which the built-in tool environment speaks);
- else the product is given at once, ``<answer>56088</answer>``, which the model can only guess on new factors.

With the direct form in the majority the warm model's greedy answer is a guess; its samples sometimes call the
calculator and are right, so GRPO has a behaviour to reinforce: held-out accuracy and the tool-call rate rise.
"""

from __future__ import annotations

import random
from pathlib import Path

from openrlhf.data.synthetic import _write_json_list, check_sizes
from openrlhf.utils.tool_protocol import tool_call_text, tool_response_turn

LOW, HIGH = 100, 999


def tool_target(expression: str, result: str) -> str:
    """A whole tool-using answer: the call, the calculator's turn, the final answer."""
    call = tool_call_text("calculator", {"expression": expression})
    return f"{call}<|im_end|>{tool_response_turn([result])}<answer>{result}</answer>"


def write_products_task(
    out_dir: str | Path, num_train: int, num_heldout: int, seed: int = 0, *, tool_share: float = 0.3
) -> dict[str, Path]:
    """Write train.json, heldout.json and sft.json; returns {"train", "heldout", "sft"}."""
    if not 0.0 <= tool_share <= 1.0:
        raise ValueError(f"tool_share must be in [0, 1], got {tool_share}")
    check_sizes(num_train, num_heldout)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)

    def draw() -> tuple[int, int]:
        return rng.randint(LOW, HIGH), rng.randint(LOW, HIGH)

    heldout: dict[tuple[int, int], None] = {}
    while len(heldout) < num_heldout:
        heldout.setdefault(draw(), None)
    train = []
    while len(train) < num_train:
        pair = draw()
        if pair not in heldout:
            train.append(pair)

    def row(a: int, b: int) -> dict:
        return {"problem": f"What is {a} * {b}?", "solution": str(a * b), "task": "math"}

    paths = {"train": out / "train.json", "heldout": out / "heldout.json", "sft": out / "sft.json"}
    _write_json_list(paths["train"], [row(a, b) for a, b in train])
    _write_json_list(paths["heldout"], [row(a, b) for a, b in heldout])
    sft_rows = []
    for a, b in train:
        tool = rng.random() < tool_share
        response = tool_target(f"{a} * {b}", str(a * b)) if tool else f"<answer>{a * b}</answer>"
        sft_rows.append({**row(a, b), "response": response})
    _write_json_list(paths["sft"], sft_rows)
    return paths
