"""remote_rm runs with only the reward extra: it never imports torch, ray, transformers or openrlhf.

A ``sitecustomize`` on PYTHONPATH installs an import blocker in every Python process (the server and
its spawned workers), records each attempt, and raises ImportError. The server must start, score
every kind of task, and nobody may even have tried to import a blocked package.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from rm_fake_openai import free_port

REPO = Path(__file__).resolve().parents[2]
BLOCKED = ("torch", "ray", "transformers", "openrlhf", "deepspeed", "vllm", "torchvision")

SITECUSTOMIZE = """
import importlib.abc, os, sys
BLOCKED = {blocked!r}
LOG = os.environ["RM_BLOCKED_IMPORT_LOG"]

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            with open(LOG, "a") as f:
                f.write(f"{{os.getpid()}} {{name}}\\n")
            raise ModuleNotFoundError(f"blocked for this test: {{name}}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
"""


def test_server_runs_without_torch_ray_transformers_openrlhf(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(blocked=BLOCKED))
    log = tmp_path / "blocked.log"
    log.write_text("")
    config = yaml.safe_load((REPO / "remote_rm" / "default_recipes.yaml").read_text())
    config["pool"] = {"workers": 1, "math_workers": 1}
    cfg = tmp_path / "recipes.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), RM_BLOCKED_IMPORT_LOG=str(log))
    port = free_port()
    out = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    cmd = [sys.executable, "-m", "remote_rm.cli", "--port", str(port), "--config", str(cfg), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        think = "<think>t</think>"
        body = {
            "query": [
                think + "<answer>\\frac{1}{2}</answer>",
                think + "<answer>a small dog runs</answer>",
                think + "<answer>[0, 0, 10, 10]</answer>",
                think + '<answer>[{"bbox_2d": [0, 0, 10, 10], "label": "cat"}]</answer>',
            ],
            "prompts": [""] * 4,
            "labels": [
                "0.5",
                {"solution": "a little dog is running", "task": "generative"},
                {"solution": [0, 0, 10, 10], "task": "rec"},
                {"solution": [{"bbox_2d": [0, 0, 10, 10], "label": "cat"}], "task": "ovd"},
            ],
        }
        resp = httpx.post(f"{base}/get_reward", content=json.dumps(body), timeout=120)
        assert resp.status_code == 200, resp.text
        result = resp.json()
        assert [result["rewards"][i] for i in (0, 2, 3)] == pytest.approx([2.0, 2.0, 2.0])
        assert 1.0 < result["rewards"][1] < 2.0
        assert result["extra_logs"]["component_errors"] == 0 and result["extra_logs"]["math_errors"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()
    attempts = log.read_text().strip()
    assert not attempts, f"blocked packages were imported:\n{attempts}"
