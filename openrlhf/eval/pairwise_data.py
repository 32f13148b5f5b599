"""Pairwise reward-model benchmarks, read in their released layouts into one record type (PreferencePair).

A PreferencePair is one question with two responses and the index (0 or 1) of the one people preferred, its
images (embedded bytes or resolved file paths) and ``source``, the subset the benchmark reports separately.
The layout of a file is recognised from its first row's keys:

- ``vl_rewardbench``, VL-RewardBench (MMInstruction/VL-RewardBench on the Hugging Face Hub, ``data/test-*.parquet``;
  read from the dataset card https://huggingface.co/datasets/MMInstruction/VL-RewardBench/blob/main/README.md):
  columns ``id``, ``query``, ``response`` (two strings), ``image`` (a Hub Image column, stored in parquet as
  ``{"bytes", "path"}``), ``human_ranking`` (the rank of each response, 0 best: ``[0, 1]`` prefers the first,
  ``[1, 0]`` the second), ``query_source`` (-> source), ``models``, ``judge``, ``rationale``, ``ground_truth``.
- ``mm_rlhf_rewardbench``, MM-RLHF-RewardBench (yifanzhang114/MM-RLHF-RewardBench on the Hub,
  ``mm_reward_bench.jsonl``; read from the copy in github.com/yfzhang114/r1_reward,
  ``inference/MM-RLHF-Reward/mm_reward_bench.jsonl``, and its scorer ``inference/MM-RLHF-Reward/get_acc.py``):
  JSON lines ``{"id", "image": "mcq/073712.png" | "video": folder, "prompt", "chosen", "rejected",
  "chosen_reason", "rejected_reason"}``; the preferred response is ``chosen`` (index 0). Several rows share an
  ``id`` (one question, several pairs). The source is the first of ``mcq, long, short, safety, video`` found in
  the image path (the scorer's rule). Video rows (a folder of frames) are skipped and counted: the rollout
  engines take images only.
- ``multimodal_rewardbench``, Multimodal RewardBench (github.com/facebookresearch/multimodal_rewardbench,
  ``README.md``, ``scripts/1_run_model_as_judge_gpt4o.py``, ``scripts/2_get_accuracy.py``): ``data/all_data.json``,
  a JSON list of ``{"ID", "Text", "Image": "images/nocaps/13062.jpg", "Output1", "Output2",
  "Better": "Output1" | "Output2", "Category"}`` (``Text`` is filled in by the repository's
  ``scripts/0_download_data.py``). The source is ``Category``, with ``safety`` split into ``safety/bias`` (IDs
  starting with "pairs") and ``safety/toxicity``, and ``reasoning`` into ``reasoning/math`` (IDs starting with
  "math") and ``reasoning/coding``, as ``2_get_accuracy.py`` reports them.

Image paths resolve against ``image_roots``, the file's folder, then an ``images/`` folder beside the file.
Every bad row raises a UserError (a ValueError) naming the file, the row (and its line in a JSON file) and the field.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openrlhf.data.images import ImageError, resolve_image_path
from openrlhf.utils.errors import UserError

LAYOUTS = ("vl_rewardbench", "mm_rlhf_rewardbench", "multimodal_rewardbench")
MM_RLHF_CATEGORIES = ("mcq", "long", "short", "safety", "video")
VIDEO_SKIPPED = "video rows (the rollout engines take images only)"


@dataclass(frozen=True)
class PreferencePair:
    """One question, two responses, and which of them (0 or 1) people preferred.

    images: each an embedded image's bytes or the absolute path of an image file, in prompt order.
    group: pairs of one question share it (MM-RLHF-RewardBench's ``id``): Acc+ asks all of them right.
    file, row, line: where the pair was read: the file, its 1-based row, the line the row starts on (parquet:
        the row again), as ``Sample.where`` counts lines.
    """

    id: str
    question: str
    responses: tuple[str, str]
    preferred: int
    images: tuple[bytes | str, ...] = ()
    source: str = ""
    benchmark: str = ""
    group: str = ""
    file: str = ""
    row: int = 0
    line: int = 0

    @property
    def where(self) -> str:
        return f"{self.file}: row {self.row}" + (f" (line {self.line})" if self.line != self.row else "")


@dataclass
class PairSet:
    """The pairs of some files, and how many rows were skipped and why."""

    pairs: list[PreferencePair] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


class _Row:
    """One raw row and where it is (``FILE: row N (line L)``), with field getters that name the field on error."""

    def __init__(self, path: Path, number: int, line: int, value: dict[str, Any]) -> None:
        self.path, self.number, self.line, self.value = path, number, line, value
        self.where = f"{path}: row {number}" + (f" (line {line})" if line != number else "")

    def place(self) -> dict[str, Any]:
        return {"file": str(self.path), "row": self.number, "line": self.line}

    def fail(self, name: str, reason: str) -> UserError:
        return UserError(f"{self.where}: field '{name}' {reason}")

    def text(self, name: str, *, allow_empty: bool = False) -> str:
        if name not in self.value or self.value[name] is None:
            raise self.fail(name, f"is missing (row keys: {sorted(self.value)})")
        value = self.value[name]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name.lower() == "id":
            return str(value)
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, got {type(value).__name__}")
        if not allow_empty and not value.strip():
            raise self.fail(name, "is empty")
        return value

    def image_file(self, name: str, ref: Any, roots: list[Path]) -> str:
        if not isinstance(ref, str) or not ref.strip():
            raise self.fail(name, f"must be an image path, got {ref!r}")
        folder = self.path.parent
        try:
            return str(resolve_image_path(ref, [*roots, folder / "images"], folder))
        except ImageError as exc:
            raise self.fail(name, str(exc)) from None


def _checked_bytes(row: _Row, name: str, data: bytes) -> bytes:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise row.fail(name, f"holds bytes that are not a readable image ({exc})") from None
    return data


def _vl_rewardbench(row: _Row, roots: list[Path]) -> PreferencePair:
    responses = row.value.get("response")
    if hasattr(responses, "tolist"):
        responses = responses.tolist()
    if (
        not isinstance(responses, (list, tuple))
        or len(responses) != 2
        or not all(isinstance(r, str) for r in responses)
    ):
        raise row.fail("response", f"must be a list of two strings, got {responses!r:.200}")
    ranking = row.value.get("human_ranking")
    if hasattr(ranking, "tolist"):
        ranking = ranking.tolist()
    ok = isinstance(ranking, (list, tuple)) and len(ranking) == 2 and all(isinstance(r, int) for r in ranking)
    if not ok or ranking[0] == ranking[1]:
        raise row.fail("human_ranking", f"must rank the two responses ([0, 1] or [1, 0]), got {ranking!r}")
    image = row.value.get("image")
    images: tuple[bytes | str, ...] = ()
    if isinstance(image, dict) and image.get("bytes"):
        images = (_checked_bytes(row, "image", bytes(image["bytes"])),)
    elif isinstance(image, dict) and image.get("path"):
        images = (row.image_file("image", image["path"], roots),)
    elif image is not None:
        raise row.fail("image", f"must be an image column value {{'bytes', 'path'}}, got {type(image).__name__}")
    ident = row.text("id")
    return PreferencePair(
        id=ident,
        question=row.text("query"),
        responses=(responses[0], responses[1]),
        preferred=0 if ranking[0] < ranking[1] else 1,
        images=images,
        source=row.text("query_source"),
        benchmark="vl_rewardbench",
        group=ident,
        **row.place(),
    )


def _mm_rlhf_rewardbench(row: _Row, roots: list[Path]) -> PreferencePair:
    ident = row.text("id")
    image_ref = row.text("image")
    source = next((k for k in MM_RLHF_CATEGORIES if k in image_ref), "other")
    return PreferencePair(
        id=ident,
        question=row.text("prompt"),
        responses=(row.text("chosen", allow_empty=True), row.text("rejected", allow_empty=True)),
        preferred=0,
        images=(row.image_file("image", image_ref, roots),),
        source=source,
        benchmark="mm_rlhf_rewardbench",
        group=ident,
        **row.place(),
    )


def _multimodal_rewardbench(row: _Row, roots: list[Path]) -> PreferencePair:
    ident = row.text("ID")
    better = row.text("Better")
    if better not in ("Output1", "Output2"):
        raise row.fail("Better", f"must be 'Output1' or 'Output2', got {better!r}")
    category = row.text("Category")
    if category == "safety":
        category = "safety/bias" if ident.lower().startswith("pairs") else "safety/toxicity"
    elif category == "reasoning":
        category = "reasoning/math" if ident.lower().startswith("math") else "reasoning/coding"
    if not isinstance(row.value.get("Text"), str) or not row.value["Text"].strip():
        raise row.fail("Text", "is missing or empty (run the benchmark's scripts/0_download_data.py to fill it in)")
    return PreferencePair(
        id=ident,
        question=row.value["Text"],
        responses=(row.text("Output1", allow_empty=True), row.text("Output2", allow_empty=True)),
        preferred=0 if better == "Output1" else 1,
        images=(row.image_file("Image", row.text("Image"), roots),),
        source=category,
        benchmark="multimodal_rewardbench",
        group=ident,
        **row.place(),
    )


READERS = {
    "vl_rewardbench": _vl_rewardbench,
    "mm_rlhf_rewardbench": _mm_rlhf_rewardbench,
    "multimodal_rewardbench": _multimodal_rewardbench,
}


def detect_layout(keys: set[str]) -> str | None:
    """The layout whose identifying keys a row has, or None."""
    if {"response", "human_ranking"} <= keys:
        return "vl_rewardbench"
    if {"chosen", "rejected", "prompt"} <= keys:
        return "mm_rlhf_rewardbench"
    if {"Output1", "Output2", "Better"} <= keys:
        return "multimodal_rewardbench"
    return None


def _raw_rows(path: Path) -> list[tuple[int, int, dict[str, Any]]]:
    """(row number, line, row) of a parquet, JSON-list or JSON-lines file."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=256)
            rows = [row for batch in batches for row in batch.to_pylist()]
        except Exception as exc:  # pyarrow raises several types for unreadable files
            raise UserError(f"{path}: cannot be read as parquet: {exc}") from None
        return [(i, i, row) for i, row in enumerate(rows, start=1)]
    from openrlhf.data.readers import read_json_file

    out = []
    for number, raw in enumerate(read_json_file(path), start=1):
        if raw.value is None:
            raise UserError(f"{path}: row {number} (line {raw.line}): {raw.error}")
        out.append((number, raw.line, raw.value))
    return out


def read_pairs(path: str | Path, image_roots: list[str] | tuple[str, ...] = ()) -> PairSet:
    """Every pair of one benchmark file (layout detected from its first row)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    rows = _raw_rows(path)
    result = PairSet()
    if not rows:
        return result
    layout = detect_layout(set(rows[0][2]))
    if layout is None:
        raise UserError(
            f"{path}: row 1: not a known pairwise layout (keys: {sorted(rows[0][2])}); expected 'response' and "
            "'human_ranking' (VL-RewardBench), 'prompt', 'chosen' and 'rejected' (MM-RLHF-RewardBench), or "
            "'Output1', 'Output2' and 'Better' (Multimodal RewardBench)"
        )
    roots = [Path(r).expanduser() for r in image_roots]
    for number, line, value in rows:
        row = _Row(path, number, line, value)
        if layout == "mm_rlhf_rewardbench" and value.get("video") and not value.get("image"):
            result.skipped[VIDEO_SKIPPED] = result.skipped.get(VIDEO_SKIPPED, 0) + 1
            continue
        result.pairs.append(READERS[layout](row, roots))
    return result


def load_pairs(paths: list[str] | tuple[str, ...], image_roots: list[str] | tuple[str, ...] = ()) -> PairSet:
    """The pairs of several files, in order, with the skipped rows of all of them counted together."""
    total = PairSet()
    for path in paths:
        part = read_pairs(path, image_roots)
        total.pairs.extend(part.pairs)
        for reason, count in part.skipped.items():
            total.skipped[reason] = total.skipped.get(reason, 0) + count
    return total
