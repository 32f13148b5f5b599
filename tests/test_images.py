"""The images, built and run with podman: the reward server's in the suite, the CPU trainer's on request.

scripts/build_images.sh makes the python:3.11-slim-bookworm base from Debian's archive (no image registry is
reachable here) and builds into private storage, removed afterwards. The reward-server image is built and
smoke-tested wherever root can install podman and mmdebstrap with apt (scripts/install.sh does); elsewhere the
test is skipped, saying why. The CPU trainer image (about 2 GB of downloads) is built with
OPENRLHF_TEST_TRAINER_IMAGE=1. The CUDA trainer image needs NVIDIA's base image and is not built here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "scripts" / "build_images.sh"


def _tools_or_skip() -> None:
    if shutil.which("podman") and shutil.which("mmdebstrap"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("podman and mmdebstrap are missing and cannot be installed here (needs root and apt-get)")


@pytest.fixture(scope="module")
def image_store(tmp_path_factory):
    """Private podman storage for this module's images, removed afterwards."""
    _tools_or_skip()
    store = Path(os.environ.get("OPENRLHF_IMAGE_STORE") or tmp_path_factory.mktemp("images"))
    yield store
    if not os.environ.get("OPENRLHF_IMAGE_STORE"):
        podman = ["podman", "--root", str(store / "root"), "--runroot", str(store / "run")]
        env = {**os.environ, "CONTAINERS_CONF": str(store / "containers.conf")}
        subprocess.run([*podman, "rm", "-af"], env=env, capture_output=True, timeout=120)
        subprocess.run([*podman, "rmi", "-af"], env=env, capture_output=True, timeout=300)
        shutil.rmtree(store, ignore_errors=True)


def _podman(store: Path) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "CONTAINERS_CONF": str(store / "containers.conf")}
    return ["podman", "--root", str(store / "root"), "--runroot", str(store / "run")], env


def _build(store: Path, what: str, timeout: int) -> None:
    env = {**os.environ, "IMAGE_STORE": str(store), "INSTALL_TOOLS": "1"}
    out = subprocess.run(["bash", str(BUILD), what], env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"build_images.sh {what} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_reward_server_image_builds_serves_and_refuses_an_open_bind(image_store):
    _build(image_store, "reward", timeout=1500)
    podman, env = _podman(image_store)
    image = "localhost/openrlhf-reward-server"

    # refused: 0.0.0.0 (the image's bind) without a token
    refused = subprocess.run([*podman, "run", "--rm", image], env=env, capture_output=True, text=True, timeout=180)
    assert refused.returncode != 0
    assert "REMOTE_RM_TOKEN" in refused.stdout + refused.stderr, refused.stdout + refused.stderr

    # healthy, and one scored request with the token
    port, token = _free_port(), "image-smoke-token"
    name = f"rm-smoke-{port}"
    run = [*podman, "run", "-d", "--name", name, "--network", "host", "-e", f"REMOTE_RM_TOKEN={token}", image]
    started = subprocess.run([*run, "--port", str(port)], env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr
    try:
        base = f"http://127.0.0.1:{port}"
        deadline, health = time.monotonic() + 240, None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert health is not None and health.json() == {"status": "ok"}, _logs(podman, env, name)
        queries = ["<think>2+2 is 4</think><answer>4</answer>", "<think>guess</think><answer>5</answer>"]
        body = {"query": queries, "prompts": ["", ""], "labels": ["4", "4"]}
        assert httpx.post(f"{base}/get_reward", json=body, timeout=60).status_code == 401  # no token
        answer = httpx.post(
            f"{base}/get_reward", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ).json()
        assert answer["components"]["accuracy"] == [1.0, 0.0], answer
        assert answer["rewards"][0] > answer["rewards"][1]
        details = httpx.get(f"{base}/health", headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
        assert details["version"] and "math" in details["recipes"], details
        # the image prepared WordNet at build time: METEOR has its synonyms, nothing was downloaded
        assert details["metrics"]["meteor"]["wordnet"] is True, details["metrics"]["meteor"]
    finally:
        subprocess.run([*podman, "rm", "-f", name], env=env, capture_output=True, timeout=120)


def _logs(podman: list[str], env: dict, name: str) -> str:
    out = subprocess.run([*podman, "logs", name], env=env, capture_output=True, text=True, timeout=60)
    return out.stdout[-3000:] + out.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("OPENRLHF_TEST_TRAINER_IMAGE"),
    reason="the CPU trainer image downloads about 2 GB: set OPENRLHF_TEST_TRAINER_IMAGE=1",
)
def test_cpu_trainer_image_answers_help_and_inspects_the_examples(image_store):
    _build(image_store, "trainer-cpu", timeout=3600)
    podman, env = _podman(image_store)
    image = "localhost/openrlhf-trainer-cpu"
    helped = subprocess.run([*podman, "run", "--rm", image], env=env, capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0 and "--actor.model_name_or_path" in helped.stdout, helped.stdout + helped.stderr
    inspect = [*podman, "run", "--rm", image, "openrlhf-data", "inspect", "examples/data/hf_chat.jsonl"]
    inspected = subprocess.run(inspect, env=env, capture_output=True, text=True, timeout=300)
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    assert "hf_chat.jsonl" in inspected.stdout
