#!/usr/bin/env python
"""Regenerate examples/data/: one small file per dataset format, tiny PNG images, and planted bad rows.

    python scripts/make_example_data.py [--out examples/data]

Every file is written deterministically; tests/data/test_examples.py checks the committed copy is current.
The README written beside the files lists each planted bad row with its line.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from openrlhf.data.prompts import r1_reward_judge_prompt
from openrlhf.data.synthetic import Shape, draw_shapes_image

REPO = Path(__file__).resolve().parents[1]

# name -> shapes drawn on a 56x56 image (boxes are inclusive pixel coordinates)
IMAGES = {
    "images/red_circle.png": [Shape("circle", "red", (8, 8, 30, 30))],
    "images/blue_square.png": [Shape("square", "blue", (20, 14, 44, 38))],
    "images/green_triangle.png": [Shape("triangle", "green", (6, 20, 30, 44))],
    "images/two_shapes.png": [Shape("circle", "yellow", (4, 4, 20, 20)), Shape("square", "red", (30, 30, 50, 50))],
    "images/three_shapes.png": [
        Shape("circle", "blue", (3, 3, 17, 17)),
        Shape("square", "green", (30, 6, 48, 24)),
        Shape("triangle", "red", (10, 32, 32, 52)),
    ],
    "images_b/yellow_square.png": [Shape("square", "yellow", (10, 10, 40, 40))],
    "images_b/wide_circle.png": [Shape("circle", "green", (30, 8, 70, 32))],
}
IMAGE_SIZES = {"images_b/wide_circle.png": (84, 42)}


def _conv(question: str, answer: str) -> list[dict]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def _jsonl(rows: list) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def _json_list(rows: list[dict]) -> str:
    return "[\n" + ",\n".join("  " + json.dumps(row) for row in rows) + "\n]\n"


OMNIRL_MIXED = [
    {"problem": "What is 7 + 5?", "solution": "12", "task": "math"},
    {
        "problem": "How many shapes are in the image?",
        "solution": "2",
        "image": ["images/two_shapes.png"],
        "task": "counting",
    },
    {"problem": "What is 9 * 3?", "solution": "<answer> 27 </answer>", "image": []},
    {"problem": "What colour is the circle?", "solution": "red", "image": "images/red_circle.png", "task": "exact"},
    {
        "problem": "<image> has one shape and <image> has three. Which image has more shapes, first or second?",
        "solution": "second",
        "image": ["images/red_circle.png", "images/three_shapes.png"],
        "task": "exact",
    },
    {"problem": "Tom has 4 pens and gets 3 more. How many pens does he have now?", "solution": 7, "task": "math"},
]

VLM_R1_REC = [
    {
        "id": 1,
        "image": "red_circle.png",
        "conversations": _conv("<image>Give the bounding box of the circle as [x1, y1, x2, y2].", "[8, 8, 30, 30]"),
        "accu_reward_method": "default",
    },
    {
        "id": 2,
        "image": "blue_square.png",
        "conversations": _conv("<image>What colour is the square? A. red B. blue C. green D. yellow", "B"),
        "accu_reward_method": "mcq",
    },
    {"id": 3, "image": "three_shapes.png", "conversations": _conv("<image>How many shapes are there?", "3")},
    {
        "id": 4,
        "image": ["two_shapes.png", "green_triangle.png"],
        "conversations": _conv("<image>\n<image>\nHow many shapes are in the two images together?", "3"),
        "accu_reward_method": "counting",
    },
    {
        "id": 5,
        "image": "green_triangle.png",
        "conversations": _conv("<image>Give the box of the triangle.", "[6, 20, 30, 44]"),
        "accu_reward_method": "iou",
        "image_size": [56, 56],
    },
]

VLM_R1_EXTRA = [
    {
        "id": "b1",
        "image": "yellow_square.png",
        "conversations": _conv("<image>Is the square yellow?", "yes"),
        "accu_reward_method": "yes_no",
    },
    {
        "id": "b2",
        "image": "wide_circle.png",
        "conversations": _conv("<image>Give the box of the circle.", "[30, 8, 70, 32]"),
        "accu_reward_method": "iou",
    },
    {"id": "b3", "image": "yellow_square.png", "conversations": _conv("<image>What shape is it?", "square")},
]

DATA_CONFIG = """\
# A VLM-R1 data_config: several files, each with its own image folder and sampling strategy.
datasets:
  - json_path: vlm_r1_rec.jsonl
    image_folder: images
    sampling_strategy: all
  - json_path: vlm_r1_extra.jsonl
    image_folder: images_b
    sampling_strategy: first:2
"""


def _r1_reward_row(question: str, r1: str, r2: str, images: list[str], answer: str) -> dict:
    content = [{"type": "text", "text": r1_reward_judge_prompt(question, r1, r2)}]
    content += [{"type": "image", "image": image} for image in images]
    return {"message": json.dumps([{"role": "user", "content": content}]), "question": question, "answer": [answer]}


R1_REWARD = [
    _r1_reward_row(
        "What colour is the circle?", "It is red.", "It is blue.", ["images/red_circle.png"], "<answer>1</answer>"
    ),
    _r1_reward_row(
        "How many shapes are there in total?",
        "One.",
        "Four: one in the first image and three in the second.",
        ["images/red_circle.png", "images/three_shapes.png"],
        "<answer>2</answer>",
    ),
]

HF_CHAT = [
    {
        "prompt": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is the square?"}]},
        ],
        "label": "blue",
        "image": "images/blue_square.png",
        "task": "exact",
    },
    {"prompt": "What is 12 - 5?", "label": "7", "task": "math"},
    {
        "prompt": [{"role": "user", "content": "Is 9 larger than 4? Answer yes or no."}],
        "label": "yes",
        "task": "yes_no",
    },
]

HF_CUSTOM_KEYS = [
    {"query": "What is 6 * 7?", "response": "42"},
    {"query": "What is 15 + 27?", "response": "42"},
]

HF_PARQUET = [
    {"prompt": "What is 3 + 4?", "label": "7", "task": "math", "image": None},
    {"prompt": "What is 10 - 6?", "label": "4", "task": "math", "image": None},
    {"prompt": "<image>How many shapes are there?", "label": "2", "task": "counting", "image": "images/two_shapes.png"},
]

# Planted bad rows: (file, rows, the line of the bad row, reason it is bad)
GOOD_VLM = {"image": "../images/red_circle.png", "conversations": _conv("<image>What colour is the circle?", "red")}
BAD_FILES = {
    "bad/not_json.jsonl": (
        [GOOD_VLM, '{"image": "../images/red_circle.png", "conversations": [', GOOD_VLM],
        2,
        "a line that is not JSON",
    ),
    "bad/missing_field.json": (
        [
            {"problem": "What is 2 + 2?", "solution": "4"},
            {"problem": "What is 3 + 3?"},
            {"problem": "1 + 1?", "solution": "2"},
        ],
        3,
        "a row without its solution",
    ),
    "bad/missing_image.jsonl": (
        [GOOD_VLM, {"image": "../images/no_such_image.png", "conversations": _conv("<image>What is this?", "x")}],
        2,
        "an image that does not exist",
    ),
    "bad/unreadable_image.jsonl": (
        [GOOD_VLM, GOOD_VLM, {"image": "corrupt.png", "conversations": _conv("<image>What is this?", "x")}],
        3,
        "an image file that is not an image",
    ),
    "bad/placeholder_mismatch.jsonl": (
        [
            GOOD_VLM,
            {"image": "../images/red_circle.png", "conversations": _conv("<image><image>Compare the images.", "same")},
        ],
        2,
        "two `<image>` placeholders for one image",
    ),
    "bad/unknown_task.jsonl": (
        [{**GOOD_VLM, "accu_reward_method": "telepathy"}],
        1,
        "an accu_reward_method that names no reward",
    ),
}


def write_examples(out: Path) -> list[Path]:
    """Write every example file under ``out``; returns the paths written."""
    written: list[Path] = []

    def put(name: str, text: str) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)

    for name, shapes in IMAGES.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        draw_shapes_image(shapes, IMAGE_SIZES.get(name, 56)).save(path, optimize=True)
        written.append(path)
    put("omnirl_mixed.json", _json_list(OMNIRL_MIXED))
    put("vlm_r1_rec.jsonl", _jsonl(VLM_R1_REC))
    put("vlm_r1_extra.jsonl", _jsonl(VLM_R1_EXTRA))
    put("data_config.yaml", DATA_CONFIG)
    put("r1_reward.jsonl", _jsonl(R1_REWARD))
    put("hf_chat.jsonl", _jsonl(HF_CHAT))
    put("hf_custom_keys.jsonl", _jsonl(HF_CUSTOM_KEYS))
    import datasets

    datasets.disable_progress_bars()
    datasets.Dataset.from_list(HF_PARQUET).to_parquet(str(out / "hf_prompts.parquet"))
    written.append(out / "hf_prompts.parquet")
    for name, (rows, _, _) in BAD_FILES.items():
        put(name, _json_list(rows) if name.endswith(".json") else _jsonl(rows))
    put("bad/corrupt.png", "this file is not a PNG image\n")
    put("README.md", readme())
    return written


def readme() -> str:
    bad = "\n".join(f"| `{name}` | {line} | {why} |" for name, (_, line, why) in BAD_FILES.items())
    return f"""# Example data

Generated by `python scripts/make_example_data.py`; do not edit by hand. Check them with:

    openrlhf-data inspect examples/data/omnirl_mixed.json examples/data/data_config.yaml \\
        examples/data/r1_reward.jsonl examples/data/hf_chat.jsonl examples/data/hf_prompts.parquet
    openrlhf-data inspect examples/data/hf_custom_keys.jsonl --input-key query --label-key response
    openrlhf-data inspect examples/data/bad/*.json*      # exits 1 and names each planted bad row

| file | format | what it shows |
|---|---|---|
| `omnirl_mixed.json` | omnirl (R1-V) JSON list | text-only and image rows mixed; `image` absent, `[]`, a path or a list; a two-image row with `<image>` placeholders |
| `vlm_r1_rec.jsonl` | vlm_r1 | REC rows (`accu_reward_method` default / iou -> task rec, with image_size), mcq, no method, a two-image row |
| `vlm_r1_extra.jsonl` | vlm_r1 | a second file whose images live in `images_b/` |
| `data_config.yaml` | VLM-R1 data_config | both files, each with its `image_folder`; `first:2` sampling on the second |
| `r1_reward.jsonl` | r1_reward | `message` as a JSON string with image parts, `question`, `answer: ["<answer>1</answer>"]` |
| `hf_chat.jsonl` | hf | `prompt` as chat messages (with an image part) or a string; `label`, `image`, `task` columns |
| `hf_prompts.parquet` | hf | the same keys in a parquet file |
| `hf_custom_keys.jsonl` | hf | other column names: `--input-key query --label-key response` |

Planted bad rows (each file also has good rows):

| file | bad line | what is wrong |
|---|---|---|
{bad}

Images are 56x56 palette PNGs of a few hundred bytes (`images_b/wide_circle.png` is 84x42).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "examples" / "data"))
    out = Path(parser.parse_args().out)
    for sub in ("images", "images_b", "bad"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for path in write_examples(out):
        print(f"{path.relative_to(out)}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
