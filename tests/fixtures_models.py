"""Session fixtures for the tiny offline checkpoints (pytest plugin: ``pytest_plugins = ["fixtures_models"]``).

Each model is built once per builder version into ``<repo>/.cache/tiny/<kind>-<version>`` and reused by
later sessions; a build goes to a temporary folder first and is renamed into place, so an interrupted or
concurrent build never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

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
