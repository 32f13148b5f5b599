"""The launcher against the real reward service (``python -m remote_rm.cli``) as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from openrlhf.config import RewardConfig
from openrlhf.trainer.local_reward_server import LocalRewardServer, open_reward_source
from openrlhf.trainer.reward_client import RemoteRewardClient, RewardServiceError, create_reward_source
from openrlhf.utils.loopback_server import ServerStartError

SMALL_CONFIG = str(Path(__file__).with_name("small_recipes.yaml"))  # math recipe, 1 worker, no WordNet
REPO = Path(__file__).resolve().parents[2]

QUERIES = [
    "<think>6 * 7</think><answer>42</answer>",  # right, well formed
    "<think>6 * 7</think><answer>41</answer>",  # wrong, well formed
    "<think>half of 84</think><answer>42</answer>",  # right against a LaTeX label (math equivalence)
    "no idea",  # no format, no answer
]
PROMPTS = ["What is 6 * 7?"] * 4
LABELS = ["42", "42", "$42$", "42"]


def process_gone(pid: int, timeout: float = 20.0) -> bool:
    """True once ``pid`` no longer runs (absent, or a zombie nobody reaped yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def refuses_connections(base_url: str) -> bool:
    try:
        httpx.get(f"{base_url}/health", timeout=2)
    except httpx.ConnectError:
        return True
    return False


def test_open_reward_source_starts_scores_and_stops_the_service(tmp_path):
    cfg = RewardConfig(launch_local_server=True, server_config=SMALL_CONFIG, batch_size=2, retries=1)
    with open_reward_source(cfg, tmp_path) as source:
        assert isinstance(source, RemoteRewardClient)
        url = source.urls[0]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/get_reward")
        result = source.score(QUERIES, PROMPTS, LABELS)
    assert result.scores == [1.0, 0.0, 1.0, 0.0]
    assert result.components["format"] == [1.0, 1.0, 1.0, 0.0]
    assert result.rewards[0] == result.rewards[2] > result.rewards[1] > result.rewards[3]
    assert result.extra_logs["accuracy"] == pytest.approx(0.5)
    log = (tmp_path / "reward_server.log").read_text()
    assert "remote_rm.cli" in log and SMALL_CONFIG in log
    assert refuses_connections(url.rsplit("/", 1)[0])


def test_service_killed_mid_run_retries_then_names_the_url(tmp_path):
    cfg = RewardConfig(retries=2, backoff=0.1, timeout=5)
    with LocalRewardServer(SMALL_CONFIG, log_dir=tmp_path) as server:
        client = create_reward_source(cfg, urls=[server.url])
        try:
            assert client.score(QUERIES, PROMPTS, LABELS).scores == [1.0, 0.0, 1.0, 0.0]
            workers = children_of(server.pid)
            assert workers  # the service scores in worker processes
            os.kill(server.pid, signal.SIGKILL)  # the server alone dies; its workers are orphaned
            assert process_gone(server.pid)
            start = time.monotonic()
            with pytest.raises(RewardServiceError) as err:
                client.score(QUERIES, PROMPTS, LABELS)
            assert time.monotonic() - start >= 0.3  # 0.1 + 0.2 s of backoff between the 3 attempts
        finally:
            client.close()
    message = str(err.value)
    assert server.url in message and "3 attempts" in message
    assert all(process_gone(pid) for pid in workers)  # stop() reaped the orphans too


def test_service_that_exits_at_start_shows_its_log(tmp_path):
    bad = tmp_path / "bad_recipes.yaml"
    bad.write_text("default_recipe: nope\nrecipes:\n  math:\n    components:\n      - {fn: format}\n")
    with pytest.raises(ServerStartError) as err:
        LocalRewardServer(str(bad), log_dir=tmp_path).start()
    message = str(err.value)
    assert "exited with code 2" in message and "bad config" in message and "nope" in message
    assert str(tmp_path / "reward_server.log") in message

    with pytest.raises(ServerStartError, match="unrecognized arguments: --no-such-flag"):
        LocalRewardServer(log_dir=tmp_path, extra_args=["--no-such-flag"]).start()
    with pytest.raises(FileNotFoundError, match="reward.server_config: file not found: .*missing.yaml"):
        LocalRewardServer(str(tmp_path / "missing.yaml"))


def test_service_that_is_not_up_in_time_is_stopped(tmp_path):
    server = LocalRewardServer(SMALL_CONFIG, log_dir=tmp_path, startup_timeout=0.05)
    with pytest.raises(ServerStartError, match=r"did not answer http://127.0.0.1:\d+/health within 0.05 s"):
        server.start()
    assert not server.is_running() and server.pid is None


DRIVER = textwrap.dedent(
    """
    import sys, time
    from openrlhf.trainer.local_reward_server import LocalRewardServer
    server = LocalRewardServer(sys.argv[1], log_dir=sys.argv[2]).start()
    print(server.pid, server.base_url, flush=True)
    if sys.argv[3] == "exception":
        raise RuntimeError("driver crashed")
    time.sleep(600)
    """
)


@pytest.mark.parametrize("how", ["exception", "sigkill"])
def test_service_stops_when_the_driver_dies(tmp_path, how):
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, SMALL_CONFIG, str(tmp_path), how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        pid_text, base_url = driver.stdout.readline().split()
        pid = int(pid_text)
        if how == "sigkill":
            assert httpx.get(f"{base_url}/health", timeout=5).status_code == 200
            driver.kill()  # no atexit, no finally: only the parent-death signal can stop the server
        driver.wait(timeout=30)
        assert process_gone(pid), f"reward server {pid} outlived its driver"
        assert refuses_connections(base_url)
        if how == "exception":
            assert "driver crashed" in driver.stderr.read()
    finally:
        driver.kill()
        driver.wait(timeout=10)


def test_open_reward_source_rejects_two_sources(tmp_path):
    cfg = RewardConfig(launch_local_server=True, remote_url=["http://127.0.0.1:1/get_reward"])
    with pytest.raises(ValueError, match="launch_local_server .* must be empty"), open_reward_source(cfg, tmp_path):
        pass
    assert not (tmp_path / "reward_server.log").exists()  # refused before anything started


def test_workers_are_passed_whenever_given_else_the_server_default_applies(tmp_path):
    assert "--workers" not in LocalRewardServer(log_dir=tmp_path).command(5000)
    cmd = LocalRewardServer(log_dir=tmp_path, workers=1).command(5000)
    assert cmd[cmd.index("--workers") + 1] == "1"  # 1 means one worker, not the server's default
