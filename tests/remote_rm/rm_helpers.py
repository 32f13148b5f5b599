"""Helpers for the reward service tests: start/stop a real server subprocess on loopback, test configs,
and where the shared data lives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from rm_fake_openai import free_port

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RECIPES = REPO / "remote_rm" / "default_recipes.yaml"


def shared_data_dir() -> Path | None:
    """$SHARED_DATA_DIR, else ../shared/data beside the checkout, else /work/shared/data."""
    candidates = [os.environ.get("SHARED_DATA_DIR"), REPO / ".." / "shared" / "data", "/work/shared/data"]
    for cand in candidates:
        if cand and Path(cand).is_dir():
            return Path(cand).resolve()
    return None


class RunningServer:
    def __init__(self, proc: subprocess.Popen, port: int, log_path: Path, token: str | None = None) -> None:
        self.proc = proc
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.url = f"{self.base_url}/get_reward"
        self.log_path = log_path
        self.token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def post(self, payload, timeout: float = 120.0) -> httpx.Response:
        body = json.dumps(payload).encode()  # ASCII escapes: lone surrogates survive as \ud800
        headers = {"content-type": "application/json", **self.headers()}
        return httpx.post(self.url, content=body, headers=headers, timeout=timeout)

    def score(self, queries, labels, prompts=None) -> dict:
        prompts = prompts if prompts is not None else [""] * len(queries)
        resp = self.post({"query": list(queries), "prompts": list(prompts), "labels": list(labels)})
        assert resp.status_code == 200, resp.text
        return resp.json()


def start_server(config: dict, workdir: Path, *, token: str | None = None, workers: int = 2, timeout: float = 240.0):
    """Start ``python -m remote_rm.cli`` on a free loopback port with ``config``; wait for /health."""
    cfg_path = workdir / "recipes.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    log_path = workdir / "server.log"
    port = free_port()
    cmd = [sys.executable, "-m", "remote_rm.cli", "--port", str(port), "--config", str(cfg_path)]
    cmd += ["--workers", str(workers), "--log-level", "warning"]
    env = dict(os.environ)
    if token:
        env["TEST_RM_TOKEN"] = token
        cmd += ["--token-env", "TEST_RM_TOKEN"]
    log = open(log_path, "wb")  # noqa: SIM115 - closed by the fixture's teardown
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=REPO)
    server = RunningServer(proc, port, log_path, token)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"reward server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                return server, log
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"reward server did not answer /health in {timeout} s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


def stop_server(server: RunningServer, log) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)
    log.close()


def server_test_config(judge_url: str) -> dict:
    """The default recipes with a fast judge (1 s timeout, 1 retry) at ``judge_url`` and an 8 MiB body cap."""
    config = yaml.safe_load(DEFAULT_RECIPES.read_text())
    config["judge"] = {
        "base_url": judge_url,
        "model": "",
        "timeout_s": 1.0,
        "max_retries": 1,
        "backoff_s": 0.05,
        "concurrency": 2,
        "fallback": 0.0,
        "breaker_failures": 1000,  # the shared server's judge failures are scripted: no breaker here
    }
    config["limits"] = {"max_body_bytes": 8 * 1024 * 1024, "max_response_chars": 65536}
    config["pool"] = {"math_timeout_s": 3.0, "math_workers": 1}
    config["recipes"]["generative_rouge_l"] = {
        "components": [{"fn": "rouge", "params": {"rouge_type": "rougeL", "fallback_to_response": True}}]
    }
    config["recipes"]["length_mix"] = {
        "components": [
            {"fn": "exact_match", "name": "accuracy"},
            {"fn": "cosine_length", "params": {"correct_from": "accuracy", "max_len": 100}},
            {"fn": "omnirl_length"},
            {"fn": "repetition_penalty", "weight": 0.5},
        ]
    }
    config["tasks"]["length_mix"] = "length_mix"
    config["tasks"]["rouge_l"] = "generative_rouge_l"
    return config
