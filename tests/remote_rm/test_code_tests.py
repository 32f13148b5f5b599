"""The ``code_tests`` reward: a held-out set of handwritten correct and incorrect solutions scored exactly
(stdin/stdout and assert-style tests; off-by-one, wrong format, infinite loop, crash, no code, hostile code),
the label layouts and their errors, the params check, and one request through the real server on loopback."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from rm_helpers import start_server, stop_server

from remote_rm.protocol import Label
from remote_rm.rewards import code_tests as ct
from remote_rm.settings import ConfigError, parse_config

ADD_TESTS = [
    {"input": "1 2\n", "output": "3\n"},
    {"input": "5 7\n", "output": "12"},
    {"input": "-3 3\n", "output": "0\n"},
    {"input": "10 -20\n", "output": "-10\n"},
]
FIB_TESTS = ["assert fib(1) == 1", "assert fib(2) == 1", "assert fib(5) == 5", "assert fib(10) == 55"]
FAST = {"timeout_s": 2.0, "budget_s": 6.0}


def fenced(code: str, lang: str = "python") -> str:
    """A response with ``code`` in a fenced block."""
    return f"Here is my solution.\n```{lang}\n{code}\n```\nDone."


HELD_OUT = [
    ("add_correct", fenced("a, b = map(int, input().split())\nprint(a + b)"), ADD_TESTS, 1.0),
    ("add_trailing_space_ok", fenced("a, b = map(int, input().split())\nprint(a + b, end='  \\n\\n')"), ADD_TESTS, 1.0),
    ("add_off_by_one", fenced("a, b = map(int, input().split())\nprint(a + b + 1)"), ADD_TESTS, 0.0),
    ("add_wrong_format", fenced("a, b = map(int, input().split())\nprint('Answer:', a + b)"), ADD_TESTS, 0.0),
    ("add_half_right", fenced("a, b = map(int, input().split())\nprint(abs(a) + abs(b))"), ADD_TESTS, 0.5),
    ("add_crash", fenced("a, b = map(int, input().split())\nprint(a + b)\nraise SystemExit(3)"), ADD_TESTS, 0.0),
    ("add_no_code", "The answer is a + b, print it.", ADD_TESTS, 0.0),
    ("add_infinite_loop", fenced("while True:\n    pass"), ADD_TESTS[:2], 0.0),
    (
        "add_fork_bomb",
        fenced("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
        ADD_TESTS[:1],
        0.0,
    ),
    ("add_reads_server", fenced("print(open('/work/main/remote_rm/app.py').read())"), ADD_TESTS[:2], 0.0),
    (
        "add_last_python_block_wins",
        fenced("print(0)") + "\nActually:\n" + fenced("a, b = map(int, input().split())\nprint(a + b)"),
        ADD_TESTS,
        1.0,
    ),
    (
        "add_python_block_before_text_block",
        fenced("a, b = map(int, input().split())\nprint(a + b)") + fenced("3", lang="text"),
        ADD_TESTS,
        1.0,
    ),
    ("add_untagged_block", fenced("a, b = map(int, input().split())\nprint(a + b)", lang=""), ADD_TESTS, 1.0),
    (
        "fib_correct",
        fenced("def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a"),
        FIB_TESTS,
        1.0,
    ),
    (
        "fib_off_by_one",
        fenced("def fib(n):\n    a, b = 0, 1\n    for _ in range(n - 1):\n        a, b = b, a + b\n    return a"),
        FIB_TESTS,
        0.25,
    ),
    ("fib_missing_function", fenced("def fibonacci(n):\n    return n"), FIB_TESTS, 0.0),
    ("fib_exit_zero_cheat", fenced("import os\nos._exit(0)"), FIB_TESTS, 0.0),
    ("fib_sys_exit_cheat", fenced("import sys\nsys.exit(0)"), FIB_TESTS, 0.0),
    ("fib_reads_stdin_cheat", fenced("import sys\nprint(sys.stdin.read())\nimport os\nos._exit(0)"), FIB_TESTS, 0.0),
]


@pytest.mark.parametrize(("name", "response", "tests", "expected"), HELD_OUT, ids=[h[0] for h in HELD_OUT])
def test_held_out_solutions(name, response, tests, expected):
    assert ct.code_tests(response, {"tests": tests}, **FAST) == expected


def test_held_out_counts():
    """At least ten handwritten solutions, correct and incorrect, with fractional scores among them."""
    scores = {h[3] for h in HELD_OUT}
    assert len(HELD_OUT) >= 10 and {0.0, 1.0, 0.5, 0.25} <= scores


@pytest.mark.parametrize(
    "label",
    [
        {"tests": ADD_TESTS},
        json.dumps({"tests": ADD_TESTS}),
        ADD_TESTS,
        Label(solution=json.dumps({"tests": ADD_TESTS})),
        Label(solution={"tests": ADD_TESTS}),
        Label(solution="print(a + b)", fields={"tests": ADD_TESTS}),
        {"inputs": [t["input"] for t in ADD_TESTS], "outputs": [t["output"] for t in ADD_TESTS]},
        {"input_output": json.dumps({"inputs": ["1 2"], "outputs": ["3"]})},
    ],
    ids=["dict", "json_string", "list", "label_json", "label_dict", "label_fields", "apps_lists", "apps_string"],
)
def test_label_layouts(label):
    response = fenced("a, b = map(int, input().split())\nprint(a + b)")
    assert ct.code_tests(response, label, **FAST) == 1.0


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ({"tests": [{"input": "1 2"}]}, "label.tests[0].output must be a string, got missing"),
        ({"tests": [{"input": 1, "output": "1"}]}, "label.tests[0].input must be a string, got int"),
        ({"tests": [7]}, "label.tests[0] must be a string (assert) or an object"),
        ({"tests": 5}, "label.tests must be a list, got int"),
        ({"tests": []}, "label.tests is empty"),
        ("not json", "label is a string but not JSON"),
        ({"cases": []}, "label has no 'tests' (keys: cases)"),
        ({"inputs": ["1"], "outputs": []}, "label.inputs and label.outputs must be lists of equal length"),
    ],
)
def test_malformed_labels_name_the_field(label, message):
    with pytest.raises(ValueError) as info:
        ct.code_tests(fenced("print(1)"), label)
    assert message in str(info.value)


def test_compare_modes_and_truncated_output():
    assert ct.outputs_match("1 2\n3  \n\n", "1 2\n3", "lines")
    assert not ct.outputs_match("1 2 3", "1 2\n3", "lines")
    assert ct.outputs_match("1 2 3", "1 2\n3", "tokens")
    assert not ct.outputs_match("3\n", "3", "exact")
    flood = fenced("print('3' + ' ' * 100000)")
    assert ct.code_tests(flood, {"tests": [{"input": "", "output": "3"}]}, output_bytes=1000, **FAST) == 0.0


def test_budget_caps_the_sample():
    loop = fenced("import time\ntime.sleep(100)")
    tests = [{"input": "", "output": "x"}] * 10
    started = time.monotonic()
    assert ct.code_tests(loop, tests, timeout_s=1.0, budget_s=1.5) == 0.0
    assert time.monotonic() - started < 4


def test_params_check():
    assert ct.check_params({"timeout_s": 2, "memory_mb": 256, "compare": "tokens"}) == []
    problems = dict(ct.check_params({"timeout_s": -1, "max_tests": 0, "compare": "fuzzy", "cpu_s": "x"}))
    assert set(problems) == {"timeout_s", "max_tests", "compare", "cpu_s"}
    text = "default_recipe: code\nrecipes:\n  code:\n    components:\n      - fn: code_tests\n        params: {budget_s: 0}\n"
    with pytest.raises(ConfigError, match="budget_s must be a number > 0"):
        parse_config(text)


CODE_CONFIG = {
    "default_recipe": "code",
    "recipes": {"code": {"components": [{"fn": "code_tests", "params": {"timeout_s": 2.0, "budget_s": 6.0}}]}},
    "wordnet": {"enabled": False},
}


def test_through_the_real_server(tmp_path):
    server, log = start_server(CODE_CONFIG, tmp_path, workers=1)
    try:
        good = fenced("a, b = map(int, input().split())\nprint(a + b)")
        half = fenced("a, b = map(int, input().split())\nprint(abs(a) + abs(b))")
        labels = [
            json.dumps({"tests": ADD_TESTS}),
            {"solution": {"tests": ADD_TESTS}},
            ADD_TESTS,
            {"solution": "x", "tests": FIB_TESTS},
        ]
        out = server.score([good, half, "no code here", fenced("def fib(n):\n    return 1")], labels)
        assert out["rewards"] == [1.0, 0.5, 0.0, 0.5]
        bad = server.score([good], [{"solution": {"tests": [{"input": "1"}]}}])
        assert bad["rewards"] == [0.0]
        health = httpx.get(f"{server.base_url}/health", timeout=10).json()
        assert health["metrics"]["code_tests"]["used"] is True
        assert health["metrics"]["code_tests"]["sandbox"].startswith(("namespaces", "rlimits only"))
    finally:
        stop_server(server, log)
