"""``code_tests``: the fraction of a row's test cases that the response's Python code passes, each test run in
the sandbox (:mod:`remote_rm.sandbox`, docs/sandbox.md). Runs in the scoring pool (one sandbox run per test).

The code: the last fenced block tagged python/py/python3 (```python ... ```), else the last fenced block of any
language, else there is none and the reward is 0.

The tests, from the label (a :class:`remote_rm.protocol.Label`, a dict, a list, or a JSON string of these):

- ``{"tests": [...]}`` as the solution, or beside it (``{"solution": ..., "tests": [...]}``), or the list itself;
- a test is ``{"input": str, "output": str}`` (stdin -> expected stdout) or a string of Python statements
  (``"assert f(1) == 2"``) appended to the code; both kinds may mix;
- ``{"inputs": [...], "outputs": [...]}`` (APPS/TACO's layout) is read as stdin/stdout tests.

reward = passed / n over the first ``max_tests`` tests: a stdin test passes when the program exits 0 within its
limits and its stdout equals the expected output (``compare``: "lines" ignores trailing whitespace on each line
and trailing blank lines; "tokens" compares whitespace-separated tokens; "exact"); an assert test passes when
the code, then the test, run in one namespace under a small harness
that prints a token read from stdin only after both (so code that calls ``os._exit(0)`` or ``sys.exit(0)``
does not pass; code that digs the token out of the harness's frame could, which is not guarded against). Each test is its own run of at most ``timeout_s`` (wall) and ``cpu_s``; all of a
sample's runs share ``budget_s``: a test that would start after it is spent fails. Keep ``budget_s`` below
``pool.sample_timeout_s`` (10 s by default). A malformed label raises ValueError naming the field.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from remote_rm.sandbox import SandboxLimits, run_python

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n`]*\n(.*?)```", re.S)
_PYTHON_TAGS = {"python", "py", "python3"}
_COMPARES = ("lines", "tokens", "exact")


def extract_code(response: str) -> str | None:
    """The last ```python fenced block's code, else the last fenced block's, else None."""
    blocks = _FENCE.findall(response)
    if not blocks:
        return None
    python = [code for lang, code in blocks if lang.lower() in _PYTHON_TAGS]
    code = python[-1] if python else blocks[-1][1]
    return code if code.strip() else None


def _decode(value: Any, where: str) -> Any:
    """A JSON string decoded (labels often arrive as one); anything else as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(f"{where} is a string but not JSON with 'tests': {exc}") from None
    return value


def _from_io_lists(value: dict, where: str) -> list:
    """APPS/TACO's {"inputs": [...], "outputs": [...]} as [{"input", "output"}] tests."""
    inputs, outputs = value.get("inputs"), value.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
        raise ValueError(f"{where}.inputs and {where}.outputs must be lists of equal length")
    return [{"input": i, "output": o} for i, o in zip(inputs, outputs, strict=True)]


def _test_list(value: Any, where: str) -> list:
    """The raw test list inside ``value`` (a dict with tests / inputs+outputs, or the list itself)."""
    value = _decode(value, where)
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if "tests" in value:
            tests = _decode(value["tests"], f"{where}.tests")
            if not isinstance(tests, list):
                raise ValueError(f"{where}.tests must be a list, got {type(tests).__name__}")
            return tests
        if "inputs" in value or "outputs" in value:
            return _from_io_lists(value, where)
        if "input_output" in value:
            return _test_list(value["input_output"], f"{where}.input_output")
        raise ValueError(f"{where} has no 'tests' (keys: {', '.join(sorted(map(str, value))[:10])})")
    raise ValueError(f"{where} must be an object with 'tests' or a list of tests, got {type(value).__name__}")


def parse_tests(label: Any) -> list[dict | str]:
    """The label's tests: each a {"input": str, "output": str} dict or an assert-style string.

    Raises ValueError naming the bad field (``label.tests[2].output`` ...).
    """
    fields = getattr(label, "fields", None) or {}
    if "tests" in fields:
        raw, where = _test_list({"tests": fields["tests"]}, "label"), "label.tests"
    else:
        raw = _test_list(getattr(label, "solution", label), "label")
        where = "label.tests"
    if not raw:
        raise ValueError(f"{where} is empty")
    tests: list[dict | str] = []
    for i, test in enumerate(raw):
        if isinstance(test, str):
            tests.append(test)
        elif isinstance(test, dict):
            for key in ("input", "output"):
                if not isinstance(test.get(key), str):
                    got = type(test.get(key)).__name__ if key in test else "missing"
                    raise ValueError(f"{where}[{i}].{key} must be a string, got {got}")
            tests.append({"input": test["input"], "output": test["output"]})
        else:
            raise ValueError(
                f"{where}[{i}] must be a string (assert) or an object with 'input' and 'output', "
                f"got {type(test).__name__}"
            )
    return tests


def outputs_match(actual: str, expected: str, compare: str = "lines") -> bool:
    """Whether the program's stdout matches the expected output under ``compare``."""
    if compare == "exact":
        return actual == expected
    if compare == "tokens":
        return actual.split() == expected.split()
    lines_a = [line.rstrip() for line in actual.rstrip().splitlines()]
    lines_e = [line.rstrip() for line in expected.rstrip().splitlines()]
    return lines_a == lines_e


_HARNESS = """import sys
def _run():
    token = sys.stdin.readline().strip()
    scope = {{"__name__": "__main__", "__builtins__": __builtins__}}
    exec(compile({code!r}, "solution.py", "exec"), scope)
    exec(compile({test!r}, "test.py", "exec"), scope)
    sys.stdout.write("\\n" + token + "\\n")
_run()
"""


def _assert_test_passes(code: str, test: str, limits: SandboxLimits) -> bool:
    """Run the code, then the test statements, in one namespace; passed when the harness got to print a token
    it read from stdin (not in any file), so code that exits early with status 0 does not pass."""
    token = secrets.token_hex(16)
    result = run_python(_HARNESS.format(code=code, test=test), stdin=token + "\n", limits=limits)
    return result.ok and result.stdout.rstrip().rsplit("\n", 1)[-1] == token


def check_params(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(param, problem) for each value ``code_tests`` cannot take (names are checked elsewhere)."""
    problems = []
    for key in ("timeout_s", "budget_s", "cpu_s"):
        value = params.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            problems.append((key, f"{key} must be a number > 0, got {value!r}"))
    for key in ("memory_mb", "max_tests", "output_bytes"):
        value = params.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            problems.append((key, f"{key} must be an integer >= 1, got {value!r}"))
    if params.get("compare", "lines") not in _COMPARES:
        problems.append(("compare", f"compare must be one of {', '.join(_COMPARES)}, got {params['compare']!r}"))
    return problems


def code_tests(
    response: str,
    label: object,
    timeout_s: float = 4.0,
    cpu_s: float | None = None,
    memory_mb: int = 512,
    budget_s: float = 8.0,
    max_tests: int = 32,
    compare: str = "lines",
    output_bytes: int = 65536,
) -> float:
    """passed / n over the label's first ``max_tests`` tests, each run in the sandbox (module docstring)."""
    params = {"timeout_s": timeout_s, "cpu_s": cpu_s, "budget_s": budget_s, "compare": compare}
    params |= {"memory_mb": memory_mb, "max_tests": max_tests, "output_bytes": output_bytes}
    problems = check_params(params)
    if problems:
        raise ValueError("; ".join(message for _, message in problems))
    tests = parse_tests(label)[:max_tests]
    code = extract_code(response)
    if code is None:
        return 0.0
    deadline = time.monotonic() + budget_s
    passed = 0
    for test in tests:
        left = deadline - time.monotonic()
        if left < 0.05:
            break
        wall = min(timeout_s, left)
        limits = SandboxLimits(
            cpu_s=min(cpu_s or wall, wall), wall_s=wall, memory_mb=memory_mb, output_bytes=output_bytes
        )
        if isinstance(test, str):
            passed += _assert_test_passes(code, test, limits)
        else:
            result = run_python(code, stdin=test["input"], limits=limits)
            passed += (
                result.ok and not result.output_truncated and outputs_match(result.stdout, test["output"], compare)
            )
    return passed / len(tests)
