"""Helpers of the data tests: configs, tiny images and files, the example-data script, the planted bad rows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from PIL import Image

from openrlhf.config import DataConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "data"


def data_cfg(**overrides) -> DataConfig:
    return DataConfig(**overrides)


def write_png(path: Path, size: tuple[int, int] = (32, 24), colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def write_json(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")
    return path


def load_example_script():
    spec = importlib.util.spec_from_file_location("make_example_data", REPO / "scripts" / "make_example_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The planted bad rows of examples/data/bad/: the line of each and a fragment of the reason it must give.
PLANTED = {
    "bad/not_json.jsonl": (2, "not valid JSON"),
    "bad/missing_field.json": (3, "missing field 'solution'"),
    "bad/missing_image.jsonl": (2, "image '../images/no_such_image.png' not found (looked in:"),
    "bad/unreadable_image.jsonl": (3, "image 'corrupt.png'"),
    "bad/placeholder_mismatch.jsonl": (2, "2 <image> placeholder(s) but 1 image(s)"),
    "bad/unknown_task.jsonl": (1, "unknown task 'telepathy'"),
}
