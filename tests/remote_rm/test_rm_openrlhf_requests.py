"""Requests as OpenRLHF's own clients build them, against the real server on loopback.

What OpenRLHF sends (read from its sources, commit 3c3be62):

- the current client (``openrlhf/utils/agent.py``, ``SingleTurnAgentExecutor``) posts one sample per
  request with aiohttp, ``json={"query": [query], "prompts": [prompt], "labels": [label]}``: ``query``
  is ``tokenizer.decode(prompt_ids + response_ids, skip_special_tokens=False)`` (the chat-templated
  prompt, the response and its end-of-turn token), ``label`` is whatever the dataset's label column
  holds (a string, a number, null, a list, an object), or ``""`` when ``--label_key`` is not set;
- 0.6 to 0.8 (``openrlhf/utils/remote_rm_utils.py``) post the same three keys for a whole batch;
- 0.4 and 0.5 post ``{"query": queries}`` only and read ``answer["rewards"]``.

The current client copies the answer's ``extra_logs`` into the sample's ``info`` dict key by key
(``samples_generator.py``: ``info[key] = torch.tensor([value])``, after ``info["reward"]`` and
``info["score"]``), then batches the info dicts of many one-sample answers (``experience.py``:
``make_experience_batch`` takes the first answer's keys). So no key may clash with its own, and every
answer must have the same keys.
"""

from __future__ import annotations

import asyncio
import json
import math

import aiohttp
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rm_helpers import start_server, stop_server

from remote_rm.protocol import TASKS, Label, ProtocolError, parse_label, parse_request
from remote_rm.scoring import Scorer, openrlhf_safe_names
from remote_rm.settings import parse_config

# Keys OpenRLHF sets in an experience's info dict itself, or merges with it before logging
# (samples_generator.py, experience_maker.py, experience.py episode fields, ppo_actor.py, ppo_critic.py).
OPENRLHF_OWN_KEYS = {
    "reward",
    "score",
    "rewards",
    "scores",
    "response_length",
    "total_length",
    "truncated",
    "response_clip_ratio",
    "kl",
    "logprobs_diff",
    "group_reward_std",
    "return",
    "ppo_clip_ratio",
    "ppo_kl",
    "vllm_kl",
    "policy_loss",
    "entropy_loss",
    "actor_lr",
    "actor_grad_norm",
    "critic_loss",
    "values",
    "critic_lr",
    "critic_grad_norm",
}

THINK = "<think>Let me work it out.</think>"

# A server whose default recipe needs no label, plus a recipe with components named like OpenRLHF's keys.
LABEL_FREE_CONFIG = {
    "default_recipe": "fmt",
    "tasks": {"counting": "counting", "clash": "clash"},
    "recipes": {
        "fmt": {
            "components": [
                {"fn": "format", "params": {"mode": "strict"}},
                {"fn": "repetition_penalty", "weight": 0.5},
                {"fn": "omnirl_length", "weight": 0.0},
            ]
        },
        "counting": {
            "score": "accuracy",
            "components": [{"fn": "format"}, {"fn": "numeric_accuracy", "name": "accuracy"}],
        },
        "clash": {
            "score": "score",
            "components": [
                {"fn": "exact_match", "name": "score"},
                {"fn": "omnirl_length", "name": "response_length", "weight": 0.0},
            ],
        },
    },
    "pool": {"workers": 1},
    "wordnet": {"enabled": False},
}


@pytest.fixture(scope="module")
def label_free_server(tmp_path_factory, remote_rm_cache):
    running, log = start_server(LABEL_FREE_CONFIG, tmp_path_factory.mktemp("rm_label_free"), workers=1)
    yield running
    stop_server(running, log)


def qwen_prompt(question: str) -> str:
    """A prompt after OpenRLHF's ``apply_chat_template(..., add_generation_prompt=True)`` for Qwen2.5."""
    return (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    )


def decoded_query(prompt: str, response: str) -> str:
    """``tokenizer.decode(prompt_ids + response_ids, skip_special_tokens=False)``: vLLM's output ends
    with the stop token (``<|im_end|>`` for Qwen)."""
    return prompt + response + "<|im_end|>"


async def _aiohttp_post(url: str, payload: dict) -> tuple[int, dict]:
    timeout = aiohttp.ClientTimeout(total=180)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(url, json=payload) as response:  # what OpenRLHF's client does
            return response.status, await response.json()


def openrlhf_post(url: str, payload: dict) -> tuple[int, dict]:
    return asyncio.run(_aiohttp_post(url, payload))


def current_client(url: str, question: str, response: str, label) -> tuple[int, dict]:
    """One sample, as ``SingleTurnAgentExecutor._fetch_rewards_via_http`` sends it."""
    prompt = qwen_prompt(question)
    return openrlhf_post(url, {"query": [decoded_query(prompt, response)], "prompts": [prompt], "labels": [label]})


def openrlhf_info(answer: dict) -> dict:
    """The info dict OpenRLHF's current client builds from a one-sample answer (values unwrapped)."""
    reward = answer.get("rewards")
    score = answer.get("scores")
    if score is None:
        score = reward
    info = {"response_clip_ratio": False, "reward": reward, "score": score}
    for key, value in (answer.get("extra_logs") or {}).items():
        assert isinstance(value, (int, float)), f"extra_logs[{key!r}] = {value!r} is not a number"
        info[key] = value
    return info


# --------------------------------------------------------------------------- labels of any JSON type


def test_int_float_and_bool_labels_are_scored(server):
    url = server.url
    status, out = current_client(url, "What is 2+2?", THINK + "<answer>4</answer>", 4)
    assert status == 200 and out["rewards"] == [2.0] and out["scores"] == [1.0]
    status, out = current_client(url, "What is 1/2?", THINK + "<answer>\\frac{1}{2}</answer>", 0.5)
    assert status == 200 and out["rewards"] == [2.0]
    status, out = current_client(url, "What is 6/3?", THINK + "<answer>2</answer>", 2.0)  # label "2.0"
    assert status == 200 and out["rewards"] == [2.0]
    status, out = current_client(url, "What is 2+2?", THINK + "<answer>5</answer>", 4)
    assert status == 200 and out["rewards"] == [1.0] and out["scores"] == [0.0]
    status, out = current_client(url, "Is it?", THINK + "<answer>yes</answer>", True)
    assert status == 200 and math.isfinite(out["rewards"][0])


def test_label_text_of_json_scalars():
    known = set(TASKS)
    assert parse_label(42, "l", known) == Label("42")
    assert parse_label(-7, "l", known) == Label("-7")
    assert parse_label(10**30, "l", known) == Label("1" + "0" * 30)
    assert parse_label(0.5, "l", known) == Label("0.5")
    assert parse_label(2.0, "l", known) == Label("2.0")
    assert parse_label(1e-7, "l", known) == Label("1e-07")
    assert parse_label(True, "l", known) == Label("true") and parse_label(False, "l", known) == Label("false")
    assert parse_label([1, 2, 3, 4], "l", known) == Label([1, 2, 3, 4])
    for missing in (None, "", "  \n"):
        assert parse_label(missing, "l", known).missing
    assert parse_label({"solution": None, "task": "rec"}, "l", known).missing
    assert not parse_label("0", "l", known).missing and not parse_label(0, "l", known).missing


def test_null_label_is_scored_by_a_recipe_that_needs_none(label_free_server):
    status, out = current_client(label_free_server.url, "Say hi.", THINK + "<answer>hi</answer>", None)
    assert status == 200, out
    assert out["components"]["format"] == [1.0] and out["components"]["repetition_penalty"] == [0.0]
    assert out["rewards"] == [1.0]


def test_null_or_empty_label_where_the_recipe_needs_one_is_a_422(server):
    status, out = current_client(server.url, "What is 2+2?", THINK + "<answer>4</answer>", None)
    assert status == 422 and out["field"] == "labels[0]"
    assert "'math'" in out["detail"] and "math_accuracy" in out["detail"] and "accuracy" in out["detail"]
    status, out = current_client(server.url, "What is 2+2?", THINK + "<answer>4</answer>", "")
    assert status == 422 and out["field"] == "labels[0]" and "--label_key" in out["detail"]
    # an object with solution null still routes by task, and names that task's recipe
    status, out = current_client(
        server.url, "Where?", THINK + "<answer>[1, 2, 3, 4]</answer>", {"solution": None, "task": "rec"}
    )
    assert status == 422 and "'rec'" in out["detail"] and "rec_iou" in out["detail"]
    # several samples: the first one is named, and the count given
    payload = {"query": ["a", "b", "c"], "prompts": ["", "", ""], "labels": ["4", None, None]}
    status, out = openrlhf_post(server.url, payload)
    assert status == 422 and out["field"] == "labels[1]" and "2 of 3 samples" in out["detail"]


# --------------------------------------------------------------------------- missing fields


def test_query_only_like_openrlhf_before_0_6(label_free_server, server):
    queries = [
        decoded_query(qwen_prompt("Hi?"), THINK + "<answer>hello</answer>"),
        decoded_query(qwen_prompt("Hi?"), "hello hello hello hello hello"),
    ]
    status, out = openrlhf_post(label_free_server.url, {"query": queries})
    assert status == 200, out
    assert out["components"]["format"] == [1.0, 0.0]
    assert out["rewards"][0] == 1.0 and out["rewards"][1] < 0  # repetition penalised
    # the default recipe of the shared server (math) needs a label: a 422 naming it and its component
    status, out = openrlhf_post(server.url, {"query": queries})
    assert status == 422 and out["field"] == "labels"
    assert "'math'" in out["detail"] and "math_accuracy" in out["detail"]


def test_no_labels_with_prompts_on_a_format_only_recipe(label_free_server):
    prompt = qwen_prompt("Hi?")
    payload = {"query": [decoded_query(prompt, THINK + "<answer>hello</answer>")], "prompts": [prompt]}
    status, out = openrlhf_post(label_free_server.url, payload)
    assert status == 200 and out["rewards"] == [1.0]


def test_missing_prompts_extracts_the_response_from_the_query(label_free_server):
    # Without prompts the response is what follows the last assistant header of the query (cut at the
    # end-of-turn token), and the whole query when it has no header. Strict format scores 1 only when
    # the response is exactly <think>..</think><answer>..</answer>, so it shows what was cut out.
    prompt = qwen_prompt("Hi?")
    templated = decoded_query(prompt, THINK + "<answer>hello</answer>")
    bare = THINK + "<answer>hello</answer>"
    # a response that writes an assistant header itself: only the prompt tells where it starts
    tricky = decoded_query(prompt, "blah <|im_start|>assistant\n" + THINK + "<answer>x</answer>")
    status, out = openrlhf_post(label_free_server.url, {"query": [templated, bare, tricky], "labels": [None] * 3})
    assert status == 200, out
    assert out["components"]["format"] == [1.0, 1.0, 1.0]
    with_prompts = label_free_server.score([templated, tricky], [None, None], [prompt, prompt])
    assert with_prompts["components"]["format"] == [1.0, 0.0]


def test_huge_integer_label_is_a_400_not_a_500(server):
    body = b'{"query": ["a"], "prompts": [""], "labels": [' + b"7" * 5000 + b"]}"
    resp = httpx.post(server.url, content=body, headers={"content-type": "application/json"}, timeout=30)
    assert resp.status_code == 400 and "malformed JSON" in resp.json()["detail"]


# --------------------------------------------------------------------------- the answer's extra_logs


def test_extra_logs_do_not_clash_with_openrlhf_and_have_the_same_keys(server):
    samples = [
        ("What is 2+2?", THINK + "<answer>4</answer>", 4),
        (
            "Where is the dog?",
            THINK + '<answer>{"bbox_2d": [10, 10, 50, 50]}</answer>',
            {"solution": [10, 10, 50, 50], "task": "rec"},
        ),
        ("Describe it.", THINK + "<answer>a red car</answer>", {"solution": "A red car.", "task": "generative"}),
        ("Which is better?", THINK + "<answer>2</answer>", {"solution": "1", "task": "preference"}),
    ]
    infos, key_sets = [], []
    for question, response, label in samples:
        status, answer = current_client(server.url, question, response, label)
        assert status == 200, answer
        logs = answer["extra_logs"]
        assert not set(logs) & OPENRLHF_OWN_KEYS, sorted(set(logs) & OPENRLHF_OWN_KEYS)
        assert logs["reward_mean"] == pytest.approx(answer["rewards"][0])
        info = openrlhf_info(answer)
        assert info["reward"] == answer["rewards"] and info["score"] == answer["scores"]  # not overwritten
        infos.append(info)
        key_sets.append(set(logs))
    assert all(keys == key_sets[0] for keys in key_sets)  # make_experience_batch takes the first one's keys
    for key in infos[0]:
        [info[key] for info in infos]  # noqa: B018 - a KeyError here is what OpenRLHF would hit
    # a component absent from a one-sample answer is there as 0.0: consistency (preference only)
    assert infos[0]["consistency"] == 0.0 and "accuracy" in infos[0]


def test_components_named_like_openrlhf_keys_are_renamed(label_free_server):
    status, answer = current_client(label_free_server.url, "Capital?", "Paris", {"solution": "x", "task": "clash"})
    assert status == 200, answer
    logs = answer["extra_logs"]
    assert "rm_score" in logs and "rm_response_length" in logs and "reward_mean" in logs
    assert not set(logs) & OPENRLHF_OWN_KEYS
    assert set(answer["components"]) == {"score", "response_length"}  # the components keep their names


def test_safe_names_mapping():
    names, reward = openrlhf_safe_names(["format", "score", "rm_score", "kl", "reward", "judge_calls"])
    assert reward == "reward_mean"
    assert names["format"] == "format" and names["judge_calls"] == "judge_calls"
    assert names["kl"] == "rm_kl" and names["rm_score"] == "rm_score" and names["score"] == "rm_rm_score"
    assert names["reward"] == "rm_reward"  # a component named "reward", not the combined reward
    assert len({*names.values(), reward}) == len(names) + 1
    names, reward = openrlhf_safe_names(["reward_mean", "accuracy"])
    assert names == {"reward_mean": "reward_mean", "accuracy": "accuracy"} and reward == "rm_reward_mean"


INLINE_CONFIG = """
default_recipe: fmt
tasks: {rep: rep}
recipes:
  fmt:
    components:
      - {fn: format}
      - {fn: omnirl_length, name: response_length, weight: 0.0}
  rep:
    components:
      - {fn: repetition_penalty}
pool: {workers: 1}
wordnet: {enabled: false}
"""


@pytest.mark.parametrize("shape", ["mean", "per_sample"])
@pytest.mark.parametrize("keys", ["all", "batch"])
def test_extra_logs_shapes_in_process(shape, keys):
    config = parse_config(INLINE_CONFIG + f"extra_logs: {shape}\nextra_logs_keys: {keys}\n")
    scorer = Scorer(config)  # inline components only: no worker process is started
    queries = [THINK + "<answer>a</answer>", "no tags"]
    request = parse_request({"query": queries, "labels": [None, None]}, config.known_tasks(), 10)
    out = asyncio.run(scorer.score(request))
    logs = out["extra_logs"]
    expected = {"format", "rm_response_length", "reward_mean"}
    if keys == "all":
        expected.add("repetition_penalty")
    if shape == "mean":
        expected |= {"judge_calls", "judge_failures", "math_timeouts", "math_errors", "component_errors"}
        expected |= {"scoring_timeouts", "judge_skipped", "deadline_fallbacks"}
        expected.add("truncated_responses")
        assert logs["format"] == 0.5 and logs["reward_mean"] == 0.5
        assert all(isinstance(v, float) for v in logs.values())
    else:
        assert logs["format"] == [1.0, 0.0] and logs["reward_mean"] == [1.0, 0.0]
        assert all(len(v) == 2 for v in logs.values())
    assert set(logs) == expected
    if keys == "all":
        assert logs["repetition_penalty"] == (0.0 if shape == "mean" else [0.0, 0.0])


NEEDS_LABEL_CONFIG = """
default_recipe: lenient
tasks: {strict: strict}
recipes:
  lenient:
    components:
      - {fn: format}
      - {fn: exact_match, name: accuracy, needs_label: false}
  strict:
    components:
      - {fn: "remote_rm.rewards.length:repetition_penalty", where: inline, needs_label: true}
pool: {workers: 1}
wordnet: {enabled: false}
"""


def test_needs_label_overrides_in_process():
    config = parse_config(NEEDS_LABEL_CONFIG)
    scorer = Scorer(config)
    queries = [THINK + "<answer>None</answer>", THINK + "<answer>x</answer>"]
    request = parse_request({"query": queries, "labels": [None, "x"]}, config.known_tasks(), 10)
    scorer.check_labels(request)  # exact_match lets it through: no label scores 0 (not "None" == "None")
    out = asyncio.run(scorer.score(request))
    assert out["components"]["accuracy"] == [0.0, 1.0]
    bad = parse_request({"query": queries, "labels": ["x", {"solution": "", "task": "strict"}]}, {"strict"}, 10)
    with pytest.raises(ProtocolError) as err:
        scorer.check_labels(bad)
    assert err.value.field == "labels[1]" and "'strict'" in err.value.message
    assert "remote_rm.rewards.length:repetition_penalty" in err.value.message


# --------------------------------------------------------------------------- fuzzed label types

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
task_names = st.one_of(st.none(), st.sampled_from([*TASKS, "counting", "clash", "nope"]), json_scalars)
object_labels = st.fixed_dictionaries(
    {"solution": json_values},
    optional={
        "task": task_names,
        "image_size": st.one_of(json_values, st.lists(st.integers(-5, 2000), min_size=2, max_size=2)),
        "input_size": json_values,
    },
)
labels = st.one_of(json_values, object_labels)


@settings(max_examples=300, deadline=None)
@given(raw=st.lists(labels, max_size=4))
def test_fuzzed_labels_parse_or_name_the_field(raw):
    config = parse_config(json.dumps(LABEL_FREE_CONFIG))
    payload = {"query": ["q"] * len(raw), "prompts": [""] * len(raw), "labels": raw}
    try:
        request = parse_request(json.loads(json.dumps(payload)), config.known_tasks(), 100)
    except ProtocolError as exc:
        assert exc.status == 422 and exc.field and exc.field.startswith("labels[")
        return
    assert len(request.labels) == len(raw)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(raw=st.lists(labels, min_size=1, max_size=3))
def test_fuzzed_labels_over_http_never_500(label_free_server, raw):
    queries = [decoded_query(qwen_prompt("q"), THINK + "<answer>7</answer>")] * len(raw)
    status, out = openrlhf_post(label_free_server.url, {"query": queries, "prompts": [""] * len(raw), "labels": raw})
    assert status in (200, 422), out
    if status == 422:
        assert out["field"].startswith("labels")
    else:
        assert len(out["rewards"]) == len(raw) and all(math.isfinite(r) for r in out["rewards"])
        assert not set(out["extra_logs"]) & OPENRLHF_OWN_KEYS
