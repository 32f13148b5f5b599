"""Reward answers in every shape OpenRLHF's reward functions and servers send, the forms of
reward.remote_url, and the openrlhf.utils math helpers OpenRLHF's math_reward_func.py imports."""

from __future__ import annotations

import inspect
import math
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from openrlhf.config import ConfigError, RewardConfig
from openrlhf.config_loading import load_config
from openrlhf.trainer.local_reward_server import open_reward_source
from openrlhf.trainer.reward_client import (
    FileRewardFunction,
    RemoteRewardClient,
    RewardError,
    RewardFunctionError,
    RewardServiceError,
    create_reward_source,
    describe_value,
    parse_reward_payload,
)
from openrlhf.utils import extract_boxed_answer, grade_answer

from .reward_test_server import ThreadedRewardServer
from .serve_rm_style_server import ServeRMStyleServer, model_scores

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "openrlhf_examples"


def parse(payload, n=4):
    return parse_reward_payload(payload, n, "test")


# --------------------------------------------------------------------------- rewards and scores

R4 = [1.0, 0.0, 0.5, 0.25]


@pytest.mark.parametrize(
    "rewards",
    [
        pytest.param(R4, id="list"),
        pytest.param(tuple(R4), id="tuple"),
        pytest.param(torch.tensor(R4), id="torch"),
        pytest.param(torch.tensor(R4, dtype=torch.bfloat16), id="torch-bf16"),
        pytest.param(torch.tensor(R4, requires_grad=True) * 1, id="torch-with-grad"),
        pytest.param(torch.tensor(R4).view(4, 1), id="torch-n-by-1"),
        pytest.param(torch.tensor(R4).view(1, 4), id="torch-1-by-n"),
        pytest.param(np.array(R4), id="numpy"),
        pytest.param(np.array(R4, dtype=np.float32).reshape(4, 1), id="numpy-n-by-1"),
        pytest.param([torch.tensor(r) for r in R4], id="list-of-0d-tensors"),
        pytest.param([torch.tensor([r]) for r in R4], id="list-of-1-element-tensors"),
        pytest.param([np.float32(r) for r in R4], id="list-of-numpy-scalars"),
        pytest.param([[r] for r in R4], id="nested-per-sample-lists"),
        pytest.param([[R4[0]], R4[1], torch.tensor(R4[2]), np.array([R4[3]])], id="mixed"),
    ],
)
def test_rewards_and_scores_in_every_per_sample_shape(rewards):
    result = parse({"rewards": rewards, "scores": rewards})
    assert result.rewards == result.scores == R4
    assert all(type(v) is float for v in result.rewards)
    assert parse(rewards).rewards == R4  # a bare answer is the rewards


@pytest.mark.parametrize(
    "value",
    [0.5, 1, True, torch.tensor(0.5), torch.tensor([0.5]), np.float64(0.5), np.array(0.5), np.array([[0.5]])],
    ids=["float", "int", "bool", "0d-tensor", "1-element-tensor", "numpy-scalar", "0d-array", "1x1-array"],
)
def test_one_sample_takes_a_scalar(value):
    assert parse({"rewards": value}, n=1).rewards == [float(np.asarray(value, dtype=float).reshape(-1)[0])]


def test_bools_are_zero_or_one():
    assert parse({"rewards": [True, False, np.bool_(True), torch.tensor(False)]}).rewards == [1.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("rewards", "expected"),
    [
        ([1.0, 0.0, 1.0], "'rewards' has 3 values for 4 samples"),
        (torch.zeros(5), "'rewards' has 5 values for 4 samples"),
        (np.zeros((2, 2)), "'rewards' has 2 values for 4 samples"),
        (torch.zeros(4, 2), "'rewards'[0] is list[2] of float: [0.0, 0.0], not a number"),
        (torch.tensor(0.5), "'rewards' is one number (0.5) for 4 samples"),
        (0.5, "'rewards' is one number (0.5) for 4 samples"),
        ([1.0, "x", 0.0, 1.0], "'rewards'[1] is 'x', not a number"),
        ([1.0, None, 0.0, 1.0], "'rewards'[1] is None, not a number"),
        ([1.0, math.inf, 0.0, 1.0], "'rewards'[1] is inf, not a finite number"),
        (torch.tensor([1.0, math.nan, 0.0, 1.0]), "'rewards'[1] is nan, not a finite number"),
        (None, "'rewards' must be a list of 4 numbers, got None"),
        ("1,0,1,0", "'rewards' must be a list of 4 numbers, got '1,0,1,0'"),
    ],
)
def test_unusable_rewards_are_clear_errors(rewards, expected):
    with pytest.raises(RewardError) as err:
        parse({"rewards": rewards})
    assert str(err.value).startswith("test: ") and expected in str(err.value)


def test_wrong_length_scores_and_components_are_errors():
    with pytest.raises(RewardError, match="'scores' has 2 values for 4 samples"):
        parse({"rewards": R4, "scores": torch.ones(2)})
    with pytest.raises(RewardError, match="'components.fmt' has 3 values for 4 samples"):
        parse({"rewards": R4, "components": {"fmt": [1, None, 0]}})
    result = parse({"rewards": R4, "components": {"fmt": torch.tensor([1.0, math.nan, 0.0, 1.0])}})
    assert math.isnan(result.components["fmt"][1]) and result.components["fmt"][0] == 1.0


# --------------------------------------------------------------------------- extra_logs


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.75, 0.75),
        (torch.tensor(0.75), 0.75),
        (torch.tensor([0.75]), 0.75),
        (np.float32(0.75), 0.75),
        (True, 1.0),
        (R4, sum(R4) / 4),  # serve_rm.py: {"dummy_scores": rewards}
        (torch.tensor(R4), sum(R4) / 4),  # examples/python/reward_func.py: {"dummy_scores": tensor}
        (np.array(R4), sum(R4) / 4),
        (torch.tensor(R4).view(4, 1), sum(R4) / 4),
        ([[r] for r in R4], sum(R4) / 4),
        ([1.0, None, 0.0, None], 0.5),  # per-sample, some samples without the value
    ],
)
def test_extra_logs_are_batch_values_or_per_sample_means(value, expected):
    result = parse({"rewards": R4, "extra_logs": {"x": value}})
    assert result.extra_logs == {"x": pytest.approx(expected)}


def test_extra_logs_without_any_value_are_left_out():
    logs = {"x": [None] * 4, "y": None, "z": math.nan, "w": torch.full((4,), math.nan), "v": [None]}
    assert parse({"rewards": R4, "extra_logs": logs}).extra_logs == {}


@pytest.mark.parametrize(
    ("logs", "expected"),
    [
        ({"x": [1.0, 0.0]}, "'extra_logs'['x'] has 2 values for 4 samples (send one number, or one per sample)"),
        ({"x": torch.zeros(3)}, "'extra_logs'['x'] has 3 values for 4 samples"),
        ({"x": "high"}, "'extra_logs'['x'] is 'high', not a number"),
        ({"x": {"a": 1}}, "'extra_logs'['x'] is {'a': 1}, not a number"),
        ({"x": [1.0, "b", 0.0, 1.0]}, "'extra_logs'['x'][1] is 'b', not a number"),
        ([1.0, 2.0], "'extra_logs' must be an object of name -> number or per-sample numbers, got list[2]"),
    ],
)
def test_unusable_extra_logs_are_clear_errors(logs, expected):
    with pytest.raises(RewardError) as err:
        parse({"rewards": R4, "extra_logs": logs})
    assert expected in str(err.value)


def test_describe_value_is_short():
    text = describe_value({"rewards": torch.zeros(8), "scores": list(range(10_000)), "extra_logs": {"a": np.ones(3)}})
    assert "torch.Tensor(shape=(8,), dtype=torch.float32)" in text and "list[10000] of int" in text
    assert len(text) <= 300
    assert len(describe_value("x" * 10_000)) <= 300


# --------------------------------------------------------------------------- reward_func files


def write(tmp_path: Path, body: str, name: str = "my_reward.py") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_openrlhf_example_reward_func_runs_unchanged(capsys):
    source = FileRewardFunction(EXAMPLES / "reward_func.py")
    queries = [f"q{i} answer" for i in range(8)]
    result = source.score(queries, [f"q{i}" for i in range(8)], ["a"] * 8)
    assert len(result) == 8 and set(result.rewards) <= {0.0, 1.0}
    assert result.scores == result.rewards
    assert result.extra_logs == {"dummy_scores": pytest.approx(sum(result.rewards) / 8)}
    assert "q7 answer" in capsys.readouterr().out  # it prints its queries
    one = source.score(["q answer"], ["q"], ["a"])  # one sample: OpenRLHF's per-sample calls
    assert one.rewards in ([0.0], [1.0]) and one.extra_logs["dummy_scores"] == one.rewards[0]


def test_reward_func_that_raises_gets_one_message_naming_file_and_call(tmp_path):
    path = write(
        tmp_path,
        "def reward_func(queries, prompts, labels, **kw):\n    raise ValueError('bad label ' + 'x' * 5000)\n",
    )
    with pytest.raises(RewardFunctionError) as err:
        FileRewardFunction(path).score(["a"] * 4, ["p"] * 4, ["l"] * 4)
    message = str(err.value)
    assert message.startswith(f"{path}: reward_func raised ValueError('bad label xxx")
    assert "reward_func(4 queries, 4 prompts, 4 labels)" in message
    assert "\n" not in message and len(message) < 600 and message.count(str(path)) == 1
    assert isinstance(err.value.__cause__, ValueError)  # the traceback is still there for a debugger


@pytest.mark.parametrize(
    ("body", "expected", "returned"),
    [
        ("return None", "'rewards' must be a list of 3 numbers, got None", "returned None"),
        ("return {'scores': [1, 2, 3]}", "no 'rewards' key (keys: scores)", "returned {'scores': list[3] of int"),
        ("return torch.zeros(2)", "'rewards' has 2 values for 3 samples", "torch.Tensor(shape=(2,)"),
        ("return {'rewards': torch.tensor(1.0)}", "'rewards' is one number (1.0) for 3 samples", "shape=()"),
        (
            "return {'rewards': [0.0] * 3, 'extra_logs': {'acc': list(range(7))}}",
            "'extra_logs'['acc'] has 7 values for 3 samples",
            "'extra_logs': {'acc': list[7] of int",
        ),
    ],
)
def test_reward_func_returning_something_unusable_names_file_call_and_answer(tmp_path, body, expected, returned):
    path = write(tmp_path, f"import torch\ndef reward_func(queries, prompts, labels, **kw):\n    {body}\n")
    with pytest.raises(RewardFunctionError) as err:
        FileRewardFunction(path).score(["a", "b", "c"], ["p"] * 3, ["l"] * 3)
    message = str(err.value)
    assert message.startswith(f"{path}: reward_func: ")
    assert expected in message and "the call reward_func(3 queries, 3 prompts, 3 labels) returned" in message
    assert returned in message and "\n" not in message


# --------------------------------------------------------------------------- a serve_rm.py-shaped server


def test_serve_rm_shaped_answers_over_http_shard_and_average():
    queries = [f"prompt {i}: answer {'x' * i}{'yz' * (i % 3)}" for i in range(8)]
    expected = model_scores(queries).tolist()
    with ServeRMStyleServer() as server, RemoteRewardClient(server.url, batch_size=3, retries=0) as client:
        result = client.score(queries, ["p"] * 8, ["l"] * 8)
    assert result.rewards == result.scores == pytest.approx(expected)
    # per-sample dummy_scores in chunks of 3, 3, 2: the step's value is the mean over all 8 samples
    assert result.extra_logs == {"dummy_scores": pytest.approx(sum(expected) / 8)}
    assert sorted(len(body["query"]) for body in server.requests) == [2, 3, 3]  # sent concurrently


def test_server_answer_errors_show_the_answer():
    with ThreadedRewardServer() as server, RemoteRewardClient(server.url, retries=0) as client:
        server.behaviour.mode = "wrong_length"
        with pytest.raises(RewardServiceError) as err:
            client.score(["a 1", "b 2"], ["p", "p"], ["1", "2"])
    message = str(err.value)
    assert f"reward server {server.url}: 'rewards' has 1 values for 2 samples" in message
    assert '(the answer: {"rewards":[1.0]})' in message  # "1" occurs in "a 1"


# --------------------------------------------------------------------------- reward.remote_url forms


@pytest.mark.parametrize(
    ("value", "urls"),
    [
        ("http://127.0.0.1:5000/get_reward", ["http://127.0.0.1:5000/get_reward"]),
        ("http://a:1/get_reward,http://b:2/get_reward", ["http://a:1/get_reward", "http://b:2/get_reward"]),
        (" http://a:1/x , http://b:2/x ,", ["http://a:1/x", "http://b:2/x"]),
        (["http://a:1/x", "http://b:2/x"], ["http://a:1/x", "http://b:2/x"]),
        ("http://a:1/score.py", ["http://a:1/score.py"]),  # a URL, even one ending in .py
        ("", []),
        (None, []),
    ],
)
def test_remote_url_takes_a_string_a_comma_list_or_a_list(value, urls):
    cfg = RewardConfig(remote_url=value)
    assert cfg.remote_url == urls and cfg.reward_func == ""


def test_remote_url_py_file_is_a_reward_function(tmp_path):
    path = str(write(tmp_path, "def reward_func(q, p, l, **kw):\n    return [0.5] * len(q)\n"))
    cfg = RewardConfig(remote_url=path)
    assert cfg.reward_func == path and cfg.remote_url == []
    assert RewardConfig(remote_url=[path], reward_func=path).reward_func == path  # the same file twice is fine
    cfg = RewardConfig()
    cfg.remote_url = path  # assignment is validated too
    assert cfg.reward_func == path and cfg.remote_url == []
    source = create_reward_source(RewardConfig(remote_url=path))
    assert isinstance(source, FileRewardFunction) and source.score(["a"], ["p"], ["l"]).rewards == [0.5]
    # a config built without validation still picks the file
    raw = RewardConfig.model_construct(remote_url=[path], reward_func="")
    assert isinstance(create_reward_source(raw), FileRewardFunction)
    with open_reward_source(RewardConfig(remote_url=path), tmp_path) as opened:
        assert isinstance(opened, FileRewardFunction)


def test_remote_url_forms_from_the_command_line(tmp_path):
    path = str(tmp_path / "reward.py")
    cfg, _ = load_config(["--reward.remote_url", path])
    assert cfg.reward.reward_func == path and cfg.reward.remote_url == []
    cfg, _ = load_config(["--reward.remote_url", "http://h1:5000/get_reward,http://h2:5000/get_reward"])
    assert cfg.reward.remote_url == ["http://h1:5000/get_reward", "http://h2:5000/get_reward"]
    cfg, _ = load_config(["--reward.remote_url", "http://h1:5000/get_reward"])
    assert cfg.reward.remote_url == ["http://h1:5000/get_reward"]
    cfg, _ = load_config(["--reward.remote_url", "[http://h1:5000/get_reward]"])
    assert cfg.reward.remote_url == ["http://h1:5000/get_reward"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--reward.remote_url", "r.py,http://h:1/get_reward"], "mixes a reward function file with reward servers"),
        (["--reward.remote_url", "[http://h:1/x, r.py]"], "mixes a reward function file with reward servers"),
        (["--reward.remote_url", "a.py,b.py"], "give one .py file, or http(s) URLs"),
        (["--reward.remote_url", "a.py", "--reward.reward_func", "b.py"], "names 'b.py': set one"),
    ],
)
def test_remote_url_mixing_a_file_and_servers_is_refused(argv, expected):
    with pytest.raises(ConfigError) as err:
        load_config(argv)
    assert expected in str(err.value) and "reward.remote_url" in str(err.value)
    with pytest.raises(ValidationError):
        RewardConfig(remote_url=["x.py", "http://h:1/get_reward"])


def test_create_reward_source_refuses_a_file_mixed_with_servers():
    raw = RewardConfig.model_construct(remote_url=["x.py", "http://h:1/get_reward"], reward_func="")
    with pytest.raises(ValueError, match="mixes a reward function file with reward servers"):
        create_reward_source(raw)


# --------------------------------------------------------------------------- openrlhf.utils


def test_openrlhf_utils_has_openrlhf_signatures():
    assert list(inspect.signature(extract_boxed_answer).parameters) == ["solution"]
    assert list(inspect.signature(grade_answer).parameters)[:2] == ["given_answer", "ground_truth"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so the answer is \boxed{42}.", "42"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"first \boxed{1}, then \boxed{2}", "2"),
        (r"\boxed{1} and \fbox{3}", "3"),
        (r"\fbox{a{b}c}", "a{b}c"),
        (r"$\boxed 5$", "5"),
        (r"\boxed {7}", "7"),
        (r"\boxed{12} then cut off \boxed{1", None),  # the last box never closes, as in OpenRLHF
        ("no box here", None),
        (r"\boxedx{1}", None),
        (None, None),
    ],
)
def test_extract_boxed_answer(text, expected):
    assert extract_boxed_answer(text) == expected


def test_extract_boxed_answer_is_linear_on_floods():
    assert extract_boxed_answer("\\boxed{" + "{" * 200_000) is None
    assert extract_boxed_answer("\\boxed{1}" * 50_000) == "1"


GRADES = [
    ("42", "42", True),
    (r"\frac{1}{2}", "0.5", True),
    ("0.5", r"\dfrac12", True),
    ("1,000", "1000", True),
    ("x = 5", "5", True),
    (r"10\%", "10", True),
    (r"\text{5}", "5", True),
    (r"90^\circ", "90", True),
    ("x+1", "1+x", True),  # needs math-verify
    (r"\sqrt{2}", "2^{1/2}", True),  # needs math-verify
    ("41", "42", False),
    ("0.333", r"\frac{1}{3}", False),
    ("", "1", False),
    (None, "1", False),
    ("1", None, False),
]


@pytest.mark.parametrize(("given", "gold", "expected"), GRADES)
def test_grade_answer_in_the_main_thread(given, gold, expected):
    assert grade_answer(given, gold) is expected


def test_grade_answer_in_other_threads_gives_the_same_grades():
    """math-verify's signal timeout cannot work off the main thread (0.9 raises, 0.5 answers False)."""
    out: list[bool] = []
    worker = threading.Thread(target=lambda: out.extend(grade_answer(g, s) for g, s, _ in GRADES))
    worker.start()
    worker.join(timeout=120)
    assert out == [expected for _, _, expected in GRADES]


def test_grade_answer_uses_math_verify_timeout_only_in_the_main_thread(monkeypatch):
    import math_verify

    seen: list[object] = []
    real_verify = math_verify.verify

    def recording_verify(gold, target, *args, timeout_seconds=5, **kw):
        seen.append(timeout_seconds)
        return real_verify(gold, target, *args, timeout_seconds=timeout_seconds, **kw)

    monkeypatch.setattr(math_verify, "verify", recording_verify)
    assert grade_answer("x+1", "1+x", timeout_s=3)
    worker = threading.Thread(target=lambda: seen.append(grade_answer("x+1", "1+x")))
    worker.start()
    worker.join(timeout=60)
    assert seen == [3, None, True]


def test_grade_answer_without_math_verify_falls_back_to_normalised_comparison(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", None)  # import math_verify raises ImportError
    assert grade_answer(r"\frac{1}{2}", "0.5") and grade_answer("1,000", "1000")
    assert not grade_answer("x+1", "1+x")
