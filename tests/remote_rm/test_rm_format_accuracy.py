"""Format rewards, answer extraction and the rule-based accuracy rewards."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remote_rm.protocol import Label
from remote_rm.rewards.accuracy import (
    choice_accuracy,
    exact_match,
    numeric_accuracy,
    preference_accuracy,
    yes_no_accuracy,
)
from remote_rm.rewards.extract import final_answer, last_boxed, numbers, tagged
from remote_rm.rewards.format import format_reward, lenient_format, strict_format
from remote_rm.rewards.math_accuracy import gold_answer, math_answer, verify_answer


@pytest.mark.parametrize(
    "text, strict, lenient",
    [
        ("<think>r</think><answer>a</answer>", True, True),
        ("  <think>r</think>\n<answer>a</answer>\n", True, True),
        ("<think>r</think> x <answer>a</answer>", False, False),
        ("hello <think>r</think><answer>a</answer>", False, True),
        ("<think>r</think><answer>a</answer> bye", False, True),
        ("<think>r</think><answer> </answer>", False, True),
        ("<think>a<think>b</think><answer>c</answer>", False, True),
        ("<think>r</think><answer>a</answer><answer>b</answer>", False, True),
        ("<answer>a</answer><think>r</think>", False, False),
        ("<think>r</think>", False, False),
        ("", False, False),
    ],
)
def test_strict_and_lenient_format(text, strict, lenient):
    assert strict_format(text) is strict
    assert lenient_format(text) is lenient
    assert format_reward(text, mode="strict") == float(strict)


def test_format_custom_tags_and_rec_mode():
    assert (
        format_reward("<reason>r</reason><final>x</final>", mode="strict", think_tag="reason", answer_tag="final") == 1
    )
    assert format_reward('<think>r</think><answer>{"bbox_2d": [1, 2, 3, 4]}</answer>', mode="rec") == 1
    assert format_reward("<think>r</think><answer>the left dog</answer>", mode="rec") == 0
    with pytest.raises(ValueError, match="unknown mode"):
        format_reward("x", mode="bogus")


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", " ", "\n", "x", "<", ">"]), max_size=14)
)
def test_lenient_format_equals_the_regex_search(parts):
    text = "".join(parts)
    expected = re.search(r"<think>.*?</think>\s*<answer>.*?</answer>", text, re.S) is not None
    assert lenient_format(text) is expected


def test_answer_extraction():
    assert tagged("<answer>1</answer> then <answer>2</answer>") == "2"
    assert tagged("<answer>1</answer> then <answer>2</answer>", which="first") == "1"
    assert tagged("<answer>unclosed") is None
    assert last_boxed(r"so \boxed{\frac{1}{2}} and finally \boxed{x^{2}}") == "x^{2}"
    assert last_boxed(r"\boxed{unbalanced") is None
    assert final_answer(r"reasoning \boxed{7}") == "7"
    assert final_answer(r"<answer> 5 </answer> \boxed{7}") == "5"
    assert numbers("costs 1,234.5 or -3 or 2e3 or .5") == [1234.5, -3.0, 2000.0, 0.5]


def test_math_uses_the_extracted_answer_never_the_whole_completion():
    # The reasoning mentions the right number, the answer is wrong: 0 (scoring the whole text would pay).
    response = "<think>Maybe it is 42? No, I think 41.</think><answer>41</answer>"
    assert math_answer(response) == "41"
    assert verify_answer(math_answer(response), gold_answer("42")) == 0.0
    assert verify_answer(math_answer(r"<think>so</think> \boxed{\frac{1}{2}}"), gold_answer("0.5")) == 1.0
    assert math_answer("The answer is 42 and nothing tagged") is None
    assert gold_answer("<answer>3</answer>") == "3"
    assert verify_answer("x = 4", "4") == 1.0
    assert verify_answer("not math at all", "4") == 0.0


def test_choice_accuracy():
    gold = Label("B")
    assert choice_accuracy("<think>..</think><answer>B</answer>", gold) == 1
    assert choice_accuracy("<answer>(B) Paris</answer>", gold) == 1
    assert choice_accuracy("<answer>I think the answer is B.</answer>", gold) == 1
    assert choice_accuracy("<answer>C</answer>", gold) == 0
    assert choice_accuracy("<answer>B or C</answer>", gold) == 0  # hedging is not paid
    assert choice_accuracy("no tags, B", gold) == 0
    assert choice_accuracy("no tags, B", gold, fallback_to_response=True) == 1
    assert choice_accuracy("<answer>B</answer>", Label("(B) Paris")) == 1


def test_yes_no_on_word_boundaries():
    assert yes_no_accuracy("<answer>Yes.</answer>", Label("yes")) == 1
    assert yes_no_accuracy("<answer>NO</answer>", Label("no")) == 1
    assert yes_no_accuracy("<answer>Nobody knows</answer>", Label("no")) == 0
    assert yes_no_accuracy("<answer>yes and no</answer>", Label("yes")) == 0
    assert yes_no_accuracy("<answer>eyes</answer>", Label("yes")) == 0


def test_exact_and_numeric():
    assert exact_match("<answer>The Eiffel Tower!</answer>", Label("eiffel tower")) == 1
    assert exact_match("<answer>Eiffel</answer>", Label(["Eiffel Tower", "eiffel"])) == 1
    assert exact_match("<answer>Louvre</answer>", Label("eiffel tower")) == 0
    assert numeric_accuracy("<answer>There are 12 apples.</answer>", Label("12")) == 1
    assert numeric_accuracy("<answer>1,200</answer>", Label(1200)) == 1
    assert numeric_accuracy("<answer>13</answer>", Label("12")) == 0
    assert numeric_accuracy("<answer>12.4</answer>", Label("12"), rel_tol=0.05) == 1
    assert numeric_accuracy("<answer>none</answer>", Label("12")) == 0


def test_preference_accuracy():
    assert preference_accuracy("<think>r</think><answer>2</answer>", Label("2")) == 1
    assert preference_accuracy("<think>r</think><answer>Response 1 is better</answer>", Label(1)) == 1
    assert preference_accuracy("<think>r</think><answer>1</answer>", Label("2")) == 0
    assert preference_accuracy("<think>r</think><answer>1 or 2</answer>", Label("2")) == 0
    assert preference_accuracy("I prefer 2", Label("2")) == 0  # only the answer counts
