"""The reward HTTP client against real loopback servers, and the reward_func file source."""

from __future__ import annotations

import asyncio
import math
import pickle
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from openrlhf.config import RewardConfig
from openrlhf.trainer.reward_client import (
    FileRewardFunction,
    RemoteRewardClient,
    RewardFunctionError,
    RewardServiceError,
    create_reward_source,
    merge_results,
    parse_reward_payload,
)

from .reward_test_server import ThreadedRewardServer, contains_reward, free_port

HERE = Path(__file__).parent


def make_batch(n: int) -> tuple[list[str], list[str], list[str]]:
    """Queries where sample i contains its label when i % 3 != 0, and ends with '.' when i is even."""
    prompts = [f"question {i}?" for i in range(n)]
    labels = [f"answer-{i}" for i in range(n)]
    queries = [
        f"{p} {'answer-' + str(i) if i % 3 else 'no idea'}{'.' if i % 2 == 0 else ''}" for i, p in enumerate(prompts)
    ]
    return queries, prompts, labels


@pytest.fixture
def server():
    with ThreadedRewardServer() as srv:
        yield srv


@pytest.fixture
def second_server():
    with ThreadedRewardServer() as srv:
        yield srv


def client_for(*urls: str, **kw) -> RemoteRewardClient:
    settings = {"timeout": 5.0, "retries": 2, "backoff": 0.05, "concurrency": 4, "batch_size": 3} | kw
    return RemoteRewardClient(list(urls), **settings)


def test_sharded_batches_come_back_in_order_with_merged_logs(server, second_server):
    queries, prompts, labels = make_batch(10)
    with client_for(server.url, second_server.url) as client:
        result = client.score(queries, prompts, labels)
    accuracy = [contains_reward(q, lab) for q, lab in zip(queries, labels, strict=True)]
    fmt = [1.0 if i % 2 == 0 else 0.0 for i in range(10)]
    assert result.scores == accuracy
    assert result.rewards == [a + 0.5 * f for a, f in zip(accuracy, fmt, strict=True)]
    assert result.components == {"accuracy": accuracy, "format": fmt}
    # chunks of 3 go round-robin: 0 and 2 to the first server, 1 and 3 to the second
    # (sent concurrently, so each server may log its two requests in either order)
    assert sorted(len(r["query"]) for r in server.behaviour.requests) == [3, 3]
    assert sorted(len(r["query"]) for r in second_server.behaviour.requests) == [1, 3]
    assert sorted(q for r in server.behaviour.requests for q in r["query"]) == sorted(queries[0:3] + queries[6:9])
    assert server.behaviour.requests[0].keys() == {"query", "prompts", "labels"}
    # extra_logs are sample-weighted: the overall accuracy, not the mean of the chunk means
    assert result.extra_logs["accuracy"] == pytest.approx(sum(accuracy) / 10)
    assert result.extra_logs["batch_size"] == pytest.approx((3 * 3 + 3 * 3 + 3 * 3 + 1 * 1) / 10)


def test_rewards_only_answers_work(server):
    queries, prompts, labels = make_batch(5)
    server.behaviour.mode = "bare_list"
    with client_for(server.url) as client:
        result = client.score(queries, prompts, labels)
        assert (
            result.rewards == result.scores == [contains_reward(q, lab) for q, lab in zip(queries, labels, strict=True)]
        )
        assert result.extra_logs == {} and result.components == {}
        assert client.score([], [], []).rewards == []


def test_structured_labels_are_sent_as_json_objects(server):
    labels = [{"solution": "42", "task": "math"}, "7"]
    with client_for(server.url) as client:
        result = client.score(["it is 42.", "it is 8"], ["p1", "p2"], labels)
    assert result.scores == [1.0, 0.0]
    assert server.behaviour.requests[0]["labels"] == labels


def test_5xx_is_retried_with_backoff_then_succeeds(server):
    server.behaviour.fail_next = 2
    queries, prompts, labels = make_batch(2)
    with client_for(server.url, retries=2, backoff=0.1) as client:
        start = time.monotonic()
        result = client.score(queries, prompts, labels)
        elapsed = time.monotonic() - start
    assert len(server.behaviour.requests) == 3
    assert result.scores == [0.0, 1.0]
    assert elapsed >= 0.1 + 0.2  # backoff doubles: 0.1 s, then 0.2 s


def test_503_with_retry_after_is_waited_out_without_using_a_retry(server):
    """A busy server's back-pressure: 503 + Retry-After is not a failure, even with no retries left."""
    server.behaviour.fail_next = 3
    server.behaviour.retry_after = "0.2"
    queries, prompts, labels = make_batch(2)
    with client_for(server.url, retries=0) as client:
        start = time.monotonic()
        result = client.score(queries, prompts, labels)
        elapsed = time.monotonic() - start
    assert len(server.behaviour.requests) == 4 and result.scores == [0.0, 1.0]
    assert elapsed >= 3 * 0.2


def test_a_server_busy_past_the_wait_budget_is_a_failure(server):
    """reward.busy_wait (the config key) bounds the waiting."""
    server.behaviour.fail_next = 100
    server.behaviour.retry_after = "0.2"
    cfg = RewardConfig(remote_url=[server.url], retries=0, busy_wait=0.5)
    with RemoteRewardClient.from_config(cfg) as client, pytest.raises(RewardServiceError) as err:
        client.score(*make_batch(2))
    assert "HTTP 503" in str(err.value) and len(server.behaviour.requests) == 3  # 2 waits of 0.2 s, then no more


def test_5xx_after_the_last_retry_names_url_attempts_and_error(server):
    server.behaviour.fail_next = 100
    with client_for(server.url, retries=2) as client, pytest.raises(RewardServiceError) as err:
        client.score(*make_batch(2))
    message = str(err.value)
    assert server.url in message and "3 attempts" in message
    assert "HTTP 503" in message and "overloaded" in message
    assert len(server.behaviour.requests) == 3


def test_4xx_is_not_retried_and_shows_the_body(server):
    server.behaviour.mode = "reject"
    with client_for(server.url, retries=3) as client, pytest.raises(RewardServiceError) as err:
        client.score(*make_batch(2))
    assert "HTTP 422" in str(err.value) and "labels[1]: field 'solution'" in str(err.value)
    assert server.url in str(err.value)
    assert len(server.behaviour.requests) == 1


def test_timeout_is_retried_then_reported(server):
    server.behaviour.delay = 1.0
    with client_for(server.url, timeout=0.2, retries=1) as client, pytest.raises(RewardServiceError) as err:
        client.score(*make_batch(2))
    assert "timed out after 0.2 s" in str(err.value) and "2 attempts" in str(err.value)
    assert server.url in str(err.value)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("wrong_length", "'rewards' has 1 values for 2 samples"),
        ("not_json", "not JSON"),
        ("nan", "'rewards'[0] is nan, not a finite number"),
    ],
)
def test_malformed_answers_are_clear_errors(server, mode, expected):
    server.behaviour.mode = mode
    with client_for(server.url) as client, pytest.raises(RewardServiceError) as err:
        client.score(*make_batch(2))
    assert expected in str(err.value) and server.url in str(err.value)
    assert len(server.behaviour.requests) == 1  # an answer that is wrong is not retried


def test_server_down_at_start_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/get_reward"
    with client_for(url, retries=1) as client, pytest.raises(RewardServiceError) as err:
        client.score(*make_batch(2))
    assert url in str(err.value) and "2 attempts" in str(err.value) and "ConnectError" in str(err.value)


def test_concurrency_is_capped(server):
    server.behaviour.delay = 0.1
    queries, prompts, labels = make_batch(16)
    with client_for(server.url, batch_size=2, concurrency=3) as client:
        result = client.score(queries, prompts, labels)
    assert len(result) == 16 and len(server.behaviour.requests) == 8
    assert server.behaviour.max_in_flight == 3


def test_bearer_token_is_sent(server, monkeypatch):
    monkeypatch.setenv("TEST_REWARD_TOKEN", "s3cret")
    cfg = RewardConfig(remote_url=[server.url], token_env="TEST_REWARD_TOKEN")
    with RemoteRewardClient.from_config(cfg) as client:
        client.score(*make_batch(1))
    assert server.behaviour.headers[0]["authorization"] == "Bearer s3cret"
    monkeypatch.delenv("TEST_REWARD_TOKEN")
    with pytest.raises(ValueError, match="TEST_REWARD_TOKEN"):
        RemoteRewardClient.from_config(cfg)


def test_sync_api_works_inside_a_running_event_loop(server):
    queries, prompts, labels = make_batch(4)

    async def caller():
        with client_for(server.url) as client:
            return client.score(queries, prompts, labels)

    assert asyncio.run(caller()).scores == [0.0, 1.0, 1.0, 0.0]


def test_server_killed_mid_run_retries_then_fails(tmp_path):
    """A real server subprocess answers, is killed, and the next call retries and then names the URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/get_reward"
    proc = subprocess.Popen([sys.executable, str(HERE / "reward_test_server.py"), "--port", str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "test server did not start"
                time.sleep(0.05)
        with client_for(url, retries=2, backoff=0.1) as client:
            assert client.score(*make_batch(3)).scores == [0.0, 1.0, 1.0]
            proc.kill()
            proc.wait(timeout=10)
            start = time.monotonic()
            with pytest.raises(RewardServiceError) as err:
                client.score(*make_batch(3))
            assert time.monotonic() - start >= 0.3  # 0.1 + 0.2 s of backoff between the 3 attempts
        assert url in str(err.value) and "3 attempts" in str(err.value)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_client_pickles_for_ray_actors(server):
    with client_for(server.url) as client:
        client.score(*make_batch(1))  # its loop thread and connections exist now
        copy = pickle.loads(pickle.dumps(client))
    with copy:
        assert copy.score(*make_batch(3)).scores == [0.0, 1.0, 1.0]
        assert copy.urls == [server.url] and copy.batch_size == 3


def test_client_rejects_bad_settings():
    with pytest.raises(ValueError, match="not an http"):
        RemoteRewardClient(["localhost:5000/get_reward"])
    with pytest.raises(ValueError, match="at least one"):
        RemoteRewardClient([])
    with pytest.raises(ValueError, match="must have the same length"):
        RemoteRewardClient("http://127.0.0.1:1/x").score(["a"], ["b", "c"], ["d"])


def test_merge_fills_missing_components_with_nan():
    first = parse_reward_payload(
        {"rewards": [1.0, 0.0], "components": {"fmt": [1, None]}, "extra_logs": {"a": 1}}, 2, "x"
    )
    second = parse_reward_payload({"rewards": [0.5], "extra_logs": {"a": 4.0, "b": 2}}, 1, "y")
    merged = merge_results([first, second])
    assert merged.rewards == [1.0, 0.0, 0.5]
    assert merged.components["fmt"][0] == 1.0
    assert math.isnan(merged.components["fmt"][1]) and math.isnan(merged.components["fmt"][2])
    assert merged.extra_logs == {"a": pytest.approx(2.0), "b": pytest.approx(2.0)}


# --------------------------------------------------------------------------- reward_func files


def write_reward_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "my_reward.py"
    path.write_text(body)
    return path


def test_reward_func_file_returning_list_tensor_array_or_dict(tmp_path):
    path = write_reward_file(
        tmp_path,
        "import torch, numpy as np\n"
        "def reward_func(queries, prompts, labels, **kw):\n"
        "    r = [1.0 if lab in q else 0.0 for q, lab in zip(queries, labels)]\n"
        "    kind = kw.get('kind', 'list')\n"
        "    if kind == 'tensor': return torch.tensor(r)\n"
        "    if kind == 'array': return np.array(r)\n"
        "    if kind == 'dict': return {'rewards': r, 'scores': [x * 2 for x in r], 'extra_logs': {'acc': sum(r) / len(r)}}\n"
        "    return r\n",
    )
    source = FileRewardFunction(path)
    queries, prompts, labels = make_batch(3)
    for kind in ("list", "tensor", "array"):
        assert source.score(queries, prompts, labels, kind=kind).rewards == [0.0, 1.0, 1.0]
    result = source.score(queries, prompts, labels, kind="dict")
    assert result.scores == [0.0, 2.0, 2.0] and result.extra_logs == {"acc": pytest.approx(2 / 3)}
    assert isinstance(torch.tensor(result.rewards), torch.Tensor) and np.isfinite(result.rewards).all()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("def other(q, p, l):\n    return [0.0]\n", "defines no function named 'reward_func'"),
        ("reward_func = 3\n", "'reward_func' is not callable"),
        ("import no_such_module_xyz\n", "importing"),
    ],
)
def test_reward_func_file_load_errors(tmp_path, body, expected):
    path = write_reward_file(tmp_path, body)
    with pytest.raises(RewardFunctionError) as err:
        FileRewardFunction(path)
    assert expected in str(err.value) and str(path) in str(err.value)


def test_reward_func_file_call_errors(tmp_path):
    with pytest.raises(RewardFunctionError, match="file not found: .*missing.py"):
        FileRewardFunction(tmp_path / "missing.py")
    path = write_reward_file(
        tmp_path,
        "def reward_func(queries, prompts, labels, **kw):\n"
        "    if kw.get('boom'): raise KeyError('solution')\n"
        "    return [1.0]\n",
    )
    source = FileRewardFunction(path)
    with pytest.raises(RewardFunctionError, match=r"my_reward.py: reward_func: 'rewards' has 1 values for 2 samples"):
        source.score(["a", "b"], ["p", "p"], ["x", "y"])
    with pytest.raises(RewardFunctionError, match=r"my_reward.py: reward_func raised KeyError\('solution'\)"):
        source.score(["a"], ["p"], ["x"], boom=True)


def test_create_reward_source_picks_the_configured_one(tmp_path, server):
    path = write_reward_file(tmp_path, "def reward_func(q, p, l, **kw):\n    return [0.0] * len(q)\n")
    assert isinstance(create_reward_source(RewardConfig(reward_func=str(path))), FileRewardFunction)
    client = create_reward_source(RewardConfig(remote_url=[server.url], batch_size=7, retries=1))
    assert isinstance(client, RemoteRewardClient) and client.batch_size == 7 and client.retries == 1
    client.close()
    local = create_reward_source(RewardConfig(launch_local_server=True), urls=[server.url])
    assert isinstance(local, RemoteRewardClient) and local.urls == [server.url]
    with pytest.raises(ValueError, match="no reward source"):
        create_reward_source(RewardConfig())
    with pytest.raises(ValueError, match="exclusive"):
        create_reward_source(RewardConfig(reward_func=str(path)), urls=[server.url])


# --------------------------------------------------------------------------- replicas


def test_a_dead_replica_loses_its_share_to_the_live_one_at_once(server):
    """Two servers; one is down (nothing listens): every chunk is answered by the other, without retries or
    backoff spent on the dead one, which is then left alone for reward.replica_cooldown_s."""
    dead = f"http://127.0.0.1:{free_port()}/get_reward"
    queries, prompts, labels = make_batch(12)  # 4 chunks of 3, every second one first sent to the dead server
    with client_for(dead, server.url, retries=3, backoff=1.0, replica_cooldown=60.0) as client:
        start = time.monotonic()
        result = client.score(queries, prompts, labels)
        assert time.monotonic() - start < 1.0  # no backoff of 1 s was spent on the dead server
        assert result.scores == [contains_reward(q, label) for q, label in zip(queries, labels, strict=True)]
        assert client.failovers >= 1 and client.down_urls() == [dead]
        failovers = client.failovers
        client.score(queries, prompts, labels)  # in its cool-down: not tried at all
        assert client.failovers == failovers
    assert len(server.behaviour.requests) == 8


def test_a_hung_replica_times_out_once_then_is_skipped_and_tried_again_later(server, second_server):
    second_server.behaviour.delay = 30.0  # accepts, never answers in time
    queries, prompts, labels = make_batch(6)
    with client_for(server.url, second_server.url, timeout=0.5, replica_cooldown=0.5) as client:
        start = time.monotonic()
        assert client.score(queries, prompts, labels).scores == [
            contains_reward(q, la) for q, la in zip(queries, labels, strict=True)
        ]
        assert time.monotonic() - start < 2.5  # one timeout of 0.5 s, no retries on the hung one
        assert client.down_urls() == [second_server.url]
        time.sleep(0.6)
        assert client.down_urls() == []  # the cool-down is over: it gets its share again
        second_server.behaviour.delay = 0.0
        before = len(second_server.behaviour.requests)
        client.score(queries, prompts, labels)
        assert len(second_server.behaviour.requests) > before


def test_when_every_replica_fails_the_error_names_each(server):
    dead = f"http://127.0.0.1:{free_port()}/get_reward"
    server.behaviour.fail_next = 100
    with client_for(server.url, dead, retries=1) as client, pytest.raises(RewardServiceError) as err:
        client.score(*make_batch(2))
    message = str(err.value)
    assert message.startswith("every reward server failed") and server.url in message and dead in message


def test_a_rejected_request_is_not_sent_to_another_replica(server, second_server):
    server.behaviour.mode = "reject"
    with client_for(server.url, second_server.url) as client, pytest.raises(RewardServiceError, match="HTTP 422"):
        client.score(*make_batch(2))
    assert second_server.behaviour.requests == [] and client.failovers == 0
