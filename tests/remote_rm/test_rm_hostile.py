"""Hostile model outputs: fuzzed with hypothesis, and megabyte/tag-flood/regex-hostile/broken-unicode
strings, in-process and over HTTP. Every reward returns a finite number in bounded time, never raises."""

from __future__ import annotations

import math
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remote_rm.protocol import Label
from remote_rm.response import extract_response, make_rule
from remote_rm.rewards import accuracy, boxes, extract, format, length, ovd, similarity

PIECES = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "\\boxed{",
    "}",
    "{",
    "[",
    "]",
    ",",
    "1",
    "2.5",
    "-3",
    '"bbox_2d"',
    '"label"',
    ":",
    "```json",
    "```",
    "yes",
    "no",
    "B",
    "(A)",
    " ",
    "\n",
    "猫",
    "é",
    "\ud800",
    "\x00",
    "<|im_end|>",
    "<|im_start|>assistant\n",
    "e9",
    ".",
]
hostile_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(PIECES), max_size=80).map("".join),
)
LABELS = [
    Label("42"),
    Label([0, 0, 10, 10], "rec", {"image_size": (100.0, 100.0), "input_size": (50.0, 50.0)}),
    Label([{"bbox_2d": [0, 0, 10, 10], "label": "dog"}], "ovd"),
    Label("B"),
    Label({"weird": ["object"]}),
    Label(None),
]

FUNCTIONS = [
    lambda r, lab: format.format_reward(r, lab, mode="strict"),
    lambda r, lab: format.format_reward(r, lab, mode="lenient"),
    lambda r, lab: format.format_reward(r, lab, mode="rec"),
    lambda r, lab: boxes.rec_iou(r, lab),
    lambda r, lab: boxes.rec_iou(r, lab, box="last", threshold=0.5),
    ovd.ovd_map,
    accuracy.choice_accuracy,
    accuracy.yes_no_accuracy,
    accuracy.exact_match,
    accuracy.numeric_accuracy,
    accuracy.preference_accuracy,
    length.omnirl_length,
    length.repetition_penalty,
    lambda r, lab: similarity.bleu(r, lab, fallback_to_response=True),
    lambda r, lab: similarity.rouge(r, lab, rouge_type="rougeL", fallback_to_response=True),
    lambda r, lab: similarity.meteor(r, lab, use_wordnet=False, fallback_to_response=True),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile_text, label_index=st.integers(0, len(LABELS) - 1))
def test_fuzzed_outputs_score_finite_and_never_raise(text, label_index):
    label = LABELS[label_index]
    for fn in FUNCTIONS:
        value = fn(text, label)
        assert isinstance(value, float) and math.isfinite(value)
    extract.final_answer(text)
    extract.numbers(text)
    ovd.parse_detections(text)
    extract_response(text, "", make_rule("auto"))


HUGE = {  # ~300k characters each (the server scores at most limits.max_response_chars = 64k of a response)
    "long_word": "a" * 300_000,
    "think_flood": "<think>" * 45_000,
    "answer_flood": "<answer>" * 18_000 + "</answer>" * 18_000,
    "close_flood": "</think> " * 33_000 + "<answer>",
    "box_prefix_flood": "[1," * 100_000,
    "boxed_flood": "\\boxed{" * 40_000,
    "brace_flood": "{" * 300_000,
    "bracket_flood": "[" * 300_000 + "]" * 10,
    "fence_flood": "```json\n" * 37_000,
    "yes_no_flood": "yes no " * 43_000,
    "digits": "9" * 300_000,
    "unicode": "猫\ud800é\x00" * 75_000,
    "words": "the cat sat on the mat " * 13_000,
}
NATURAL_LABEL = {3: 1, 4: 1, 5: 2}  # rec_iou -> a rec label, ovd_map -> an ovd label; others: "42"


@pytest.mark.parametrize("name", sorted(HUGE))
def test_huge_hostile_strings_in_bounded_time(name):
    text = HUGE[name]
    for response in (text, f"<think>x</think><answer>{text}</answer>"):
        for i, fn in enumerate(FUNCTIONS):
            started = time.perf_counter()
            value = fn(response, LABELS[NATURAL_LABEL.get(i, 0)])
            elapsed = time.perf_counter() - started
            assert math.isfinite(value)
            assert elapsed < 10.0, f"{name}: function {i} took {elapsed:.1f} s"


# Whitespace runs after a word a parser keys on: a pattern with two \s* around an optional part is quadratic
# in the run (issue #15: "answer" + 10,000 spaces took 0.71-2.8 s in the choice parser). 200 such samples must
# score in well under 10 s, so each gets 50 ms here (linear parsers take about 1 ms).
WHITESPACE_RUNS = {
    "answer_spaces": "answer" + " " * 10_000,
    "tagged_answer_spaces": "<answer>answer" + " " * 10_000,
    "closed_answer_spaces": "<answer>answer" + " " * 10_000 + "</answer>",
    "answer_is_spaces": "<answer>the answer is" + " " * 10_000 + "</answer>",
    "option_tabs": "<answer>option" + "\t \n" * 3_000 + "</answer>",
    "boxed_spaces": "\\boxed{" + " " * 10_000 + "}",
    "box_spaces": "[1," + " " * 10_000 + "2, 3, 4]",
}


@pytest.mark.parametrize("name", sorted(WHITESPACE_RUNS))
def test_long_whitespace_runs_score_in_linear_time(name):
    text = WHITESPACE_RUNS[name]
    for i, fn in enumerate(FUNCTIONS):
        fn(text, LABELS[NATURAL_LABEL.get(i, 0)])  # warm-up (imports, caches)
        started = time.perf_counter()
        fn(text, LABELS[NATURAL_LABEL.get(i, 0)])
        elapsed = time.perf_counter() - started
        assert elapsed < 0.05, f"{name}: function {i} took {elapsed * 1000:.0f} ms"
    started = time.perf_counter()
    accuracy.choice_letter(text)
    assert time.perf_counter() - started < 0.05


def test_hostile_batch_over_http(server):
    payload_queries, labels = [], []
    tasks = ["rec", "ovd", "math", "generative", "choice", "preference"]
    for i, (name, text) in enumerate(sorted(HUGE.items())):
        text = text[:200_000]  # over max_response_chars (64k): truncated and counted; body under 8 MiB
        payload_queries.append(f"<|im_start|>assistant\n<think>{name}</think><answer>{text}</answer>")
        task = tasks[i % len(tasks)]
        solution = {"rec": [0, 0, 5, 5], "ovd": [{"bbox_2d": [0, 0, 5, 5], "label": "x"}]}.get(task, "1")
        labels.append({"solution": solution, "task": task})
    started = time.perf_counter()
    out = server.score(payload_queries, labels)
    assert time.perf_counter() - started < 120
    assert len(out["rewards"]) == len(payload_queries)
    assert all(math.isfinite(r) for r in out["rewards"])
    assert out["extra_logs"]["truncated_responses"] >= 1


def test_broken_unicode_over_http(server):
    # Lone surrogates arrive as JSON escapes; invalid UTF-8 bytes are a 400, not a crash.
    body = '{"query": ["<answer>\\ud800\\udfff\\ud83d x</answer>"], "prompts": [""], "labels": ["\\ud800"]}'
    resp = httpx.post(server.url, content=body.encode(), timeout=60)
    assert resp.status_code == 200 and math.isfinite(resp.json()["rewards"][0])
    resp = httpx.post(server.url, content=b'{"query": ["\xc3\x28"], "prompts": [""], "labels": ["1"]}', timeout=60)
    assert resp.status_code == 400
    deep = '{"query": ["x"], "prompts": [""], "labels": [{"solution": ' + "[" * 100_000 + "]" * 100_000 + "}]}"
    resp = httpx.post(server.url, content=deep.encode(), timeout=60)
    assert resp.status_code in (200, 400)


def test_whitespace_flood_request_is_quick_and_health_stays_responsive(server):
    """Issue #15's request: 200 choice samples, each an answer word followed by 10,000 spaces (2 MB). It
    held the server for 154 s; now it is answered in under 10 s and /health answers within 1 s throughout."""
    import threading

    queries = ["<think>t</think><answer>answer" + " " * 10_000 + "</answer>"] * 100
    queries += ["<think>t</think><answer>answer" + " " * 10_000] * 100  # unclosed tag
    labels = [{"solution": "B", "task": "choice"}] * 200
    done: dict = {}

    def send() -> None:
        started = time.perf_counter()
        done["response"] = httpx.post(
            server.url, json={"query": queries, "prompts": [""] * 200, "labels": labels}, timeout=120
        )
        done["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=send)
    thread.start()
    health = []
    while thread.is_alive():
        started = time.perf_counter()
        assert httpx.get(f"{server.base_url}/health", timeout=5).status_code == 200
        health.append(time.perf_counter() - started)
        time.sleep(0.05)
    thread.join()
    assert done["response"].status_code == 200, done["response"].text[:500]
    assert done["seconds"] < 10
    assert len(done["response"].json()["rewards"]) == 200
    assert max(health, default=0.0) < 1.0
