"""Suite-wide setup: offline Hugging Face, and caches for what is slow to build (DeepSpeed's op, tiny models)."""

from __future__ import annotations

import os
from pathlib import Path

pytest_plugins = ["fixtures_models"]

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# DeepSpeed compiles a shared-memory op on first use (~45 s): compile it once per checkout.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(CACHE / "torch_extensions"))
