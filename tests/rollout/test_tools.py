"""The built-in tools (openrlhf/rollout/tools), the tool-call protocol (openrlhf/utils/tool_protocol.py) and the
tool environment's turns (openrlhf/rollout/tool_agent.py): bad calls are answered, never raised."""

from __future__ import annotations

import asyncio
import json

import pytest
from PIL import Image

from openrlhf.rollout.tool_agent import run_call, tool_executor
from openrlhf.rollout.tools import BUILTIN_TOOLS, ToolContext
from openrlhf.rollout.tools.base import ToolError
from openrlhf.rollout.tools.calculator import calculate
from openrlhf.rollout.tools.crop import crop_and_zoom
from openrlhf.utils.tool_protocol import ToolCall, parse_tool_calls, tool_call_text, tool_response_turn


@pytest.mark.parametrize(
    ("expression", "value"),
    [("123 * 456", "56088"), ("(2 + 3) ** 2 - 1", "24"), ("7 / 2", "3.5"), ("-9 // 2", "-5"), ("10 % 4", "2"),
     ("999999999 * 999999999", "999999998000000001"), ("1 / 3", "0.333333333333"), ("6 / 3", "2")],
)  # fmt: skip
def test_calculator_is_exact(expression, value):
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "message"),
    [("__import__('os').system('id')", "Call is not allowed"), ("x + 1", "Name is not allowed"),
     ("2 ** 1000", "exponent 1000 is over 64"), ("1 / 0", "division by zero"), ("9 ** 64 * 9 ** 64", "too large"),
     ("1 +", "cannot parse"), ("", "non-empty"), ("1" * 201, "over 200 characters"), ("(-8) ** 0.5", "not a real")],
)  # fmt: skip
def test_calculator_refuses_with_a_message(expression, message):
    with pytest.raises(ToolError, match=message):
        calculate(expression)


def test_tool_calls_are_parsed_in_order_and_bad_ones_named():
    text = (
        "think first " + tool_call_text("calculator", {"expression": "1 + 2"}) + " then "
        '<tool_call>{"name": "python", "arguments": "{\\"code\\": \\"print(1)\\"}"}</tool_call>'
        "<tool_call>{not json}</tool_call><tool_call>[1, 2]</tool_call>"
        '<tool_call>{"name": "crop", "arguments": 5}</tool_call><tool_call>{"name": "calculator"'
    )
    calls = parse_tool_calls(text)
    assert [(c.name, c.arguments) for c in calls[:2]] == [
        ("calculator", {"expression": "1 + 2"}),
        ("python", {"code": "print(1)"}),
    ]
    assert "not valid JSON" in calls[2].error
    assert "must be a JSON object" in calls[3].error
    assert calls[4].name == "crop" and "arguments must be a JSON object" in calls[4].error
    assert calls[5].error == "<tool_call> without </tool_call>"
    assert parse_tool_calls("<answer>42</answer>") == []


def test_every_bad_call_is_answered_not_raised():
    tools = dict(BUILTIN_TOOLS)
    context = ToolContext()
    answers = {
        "unknown": run_call(ToolCall("search", {"q": "x"}), tools, context),
        "malformed": run_call(ToolCall(error="the call is not valid JSON"), tools, context),
        "missing": run_call(ToolCall("calculator", {}), tools, context),
        "unknown_argument": run_call(ToolCall("calculator", {"expression": "1", "x": 2}), tools, context),
        "refused": run_call(ToolCall("calculator", {"expression": "open('f')"}), tools, context),
        "no_image": run_call(ToolCall("crop", {"box": [0, 0, 4, 4]}), tools, context),
    }
    assert all(a.error and a.text.startswith("error: ") for a in answers.values()), answers
    assert "no tool 'search' (tools: calculator, crop, python)" in answers["unknown"].text
    assert "missing ['expression']" in answers["missing"].text and "unknown ['x']" in answers["unknown_argument"].text
    good = run_call(ToolCall("calculator", {"expression": "6 * 7"}), tools, context)
    assert (good.text, good.error) == ("42", False)


def test_the_tool_environment_answers_calls_then_ends_on_a_final_answer():
    executor = tool_executor(["calculator"], max_turns=3)
    env = executor.agent_instance_cls()

    async def turns():
        await env.reset({"observation": "What is 12 * 12?", "label": "144"})
        call = tool_call_text("calculator", {"expression": "12 * 12"}) + "<|im_end|>"
        first = await env.step({"action_text": call, "label": "144"})
        last = await env.step({"action_text": "<answer>144</answer>", "label": "144"})
        return first, last

    first, last = asyncio.run(turns())
    assert not first["done"] and first["environment_feedback"] == tool_response_turn(["144"])
    assert last["done"] and last["environment_feedback"] == ""
    assert last["extra_logs"] == {"tool_calls": 1.0, "tool_errors": 0.0, "tool_call_rate": 1.0}
    with pytest.raises(ValueError, match=r"unknown tool\(s\) \['shell'\]"):
        tool_executor(["shell"], 2)


def test_the_last_turn_is_not_answered():
    env = tool_executor(["calculator"], max_turns=1).agent_instance_cls()
    call = tool_call_text("calculator", {"expression": "1 + 1"})
    result = asyncio.run(env.step({"action_text": call, "label": ""}))
    assert result["done"] and result["environment_feedback"] == ""


def test_crop_zooms_into_the_named_region():
    image = Image.new("RGB", (224, 224), (255, 255, 255))
    image.paste((220, 40, 40), (150, 30, 154, 34))  # a 4 x 4 red mark
    zoomed = crop_and_zoom(image, [146, 26, 158, 38])
    assert zoomed.size == (56, 56)
    assert zoomed.getpixel((28, 28)) == (220, 40, 40) and zoomed.getpixel((2, 2)) == (255, 255, 255)
    clipped = crop_and_zoom(image, [200, 200, 400, 260])  # clipped to the image: 24 x 24 pixels
    assert clipped.size == (56, 56)
    with pytest.raises(ToolError, match="less than 2 x 2 pixels"):
        crop_and_zoom(image, [300, 300, 400, 400])
    result = BUILTIN_TOOLS["crop"].run({"box": [146, 26, 158, 38]}, ToolContext(images=[image]))
    assert len(result.images) == 1 and "cropped image 0" in result.text


def test_config_names_the_builtin_tools():
    """config.py cannot import the tools (it is below rollout/): its list of names is checked here."""
    from typing import get_args

    from openrlhf.config import RolloutConfig

    names = get_args(get_args(RolloutConfig.model_fields["tools"].annotation)[0])
    assert set(names) == set(BUILTIN_TOOLS)
    assert json.loads(json.dumps(BUILTIN_TOOLS["calculator"].schema()))["function"]["name"] == "calculator"
