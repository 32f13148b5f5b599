"""Model inputs for prompts with images, and the per-row bookkeeping of Qwen2.5-VL's flattened pixels.

Qwen2.5-VL takes the patches of *all* images of a batch as one ``pixel_values`` tensor ``[P, D]`` plus
``image_grid_thw`` ``[N, 3]`` (image i owns ``t*h*w`` consecutive patch rows and becomes
``t*h*w / merge_size**2`` ``<|image_pad|>`` tokens). A batch's multimodal part here is the dict

    {"pixel_values": Tensor[P, D] | None, "image_grid_thw": LongTensor[N, 3], "image_counts": LongTensor[B]}

where ``image_counts[b]`` is how many images row b holds (in order). With it a batch can be cut into
micro-batches (:func:`split_multimodal`, :func:`select_multimodal`) and joined (:func:`concat_multimodal`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from openrlhf.utils.errors import UserError

MULTIMODAL_KEYS = ("pixel_values", "image_grid_thw", "image_counts")
IMAGE_TOKEN = "<|image_pad|>"


class ImageTokenMismatchError(UserError):
    """The prompt's image tokens do not match its images (usually: the prompt was cut by a length limit)."""


class PromptTooLongError(UserError):
    """The encoded prompt is longer than the allowed length."""


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def build_mm_token_type_ids(
    input_ids: torch.Tensor, image_token_id: int, video_token_id: int | None = None
) -> torch.Tensor:
    """0 for text, 1 for image tokens, 2 for video tokens (what Qwen2.5-VL's get_rope_index groups by)."""
    types = torch.zeros_like(input_ids, dtype=torch.long)
    types[input_ids == image_token_id] = 1
    if video_token_id is not None:
        types[input_ids == video_token_id] = 2
    return types


def image_token_counts(image_grid_thw: torch.Tensor, merge_size: int) -> torch.Tensor:
    """Tokens each image becomes in the language model: ``t * h * w // merge_size**2``."""
    return image_grid_thw.prod(-1) // (merge_size**2)


def check_image_tokens(
    input_ids: torch.Tensor | Sequence[int] | Sequence[Sequence[int]],
    image_grid_thw: torch.Tensor | None,
    merge_size: int,
    image_token_id: int,
    *,
    image_counts: torch.Tensor | Sequence[int] | None = None,
    where: str = "",
) -> None:
    """Fail early, with the numbers, when image tokens and images disagree.

    Qwen2.5-VL otherwise fails deep inside generate/forward with "Image features and image tokens do not
    match". ``input_ids`` is one sequence or a batch; with ``image_counts`` each row is checked on its own.
    """
    ids = torch.as_tensor(input_ids)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    grid = torch.zeros(0, 3, dtype=torch.long) if image_grid_thw is None else torch.as_tensor(image_grid_thw)
    need = image_token_counts(grid, merge_size)
    have = (ids == image_token_id).sum(-1).cpu()
    if image_counts is None:
        rows = [("the batch", int(have.sum()), int(need.sum()), grid.tolist())]
    else:
        counts = torch.as_tensor(image_counts).tolist()
        if len(counts) != ids.shape[0] or sum(counts) != grid.shape[0]:
            raise ImageTokenMismatchError(
                f"{_prefix(where)}image_counts {counts} do not fit {ids.shape[0]} rows and {grid.shape[0]} images"
            )
        starts = [sum(counts[:i]) for i in range(len(counts))]
        rows = [
            (f"row {i}", int(have[i]), int(need[s : s + c].sum()), grid[s : s + c].tolist())
            for i, (s, c) in enumerate(zip(starts, counts, strict=True))
        ]
    for label, n_have, n_need, grids in rows:
        if n_have != n_need:
            hint = (
                "the prompt was probably cut by a length limit: raise data.prompt_max_len (or vllm.max_model_len) "
                "or lower data.max_pixels"
                if n_have < n_need
                else "the prompt has more image placeholders than images"
            )
            raise ImageTokenMismatchError(
                f"{_prefix(where)}{label} holds {n_have} image tokens ({IMAGE_TOKEN}) but its images need {n_need} "
                f"(image_grid_thw {grids}, merge_size {merge_size}); {hint}"
            )


def _as_rgb(image: Any, where: str) -> Image.Image:
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as opened:
                return opened.convert("RGB")
        except OSError as exc:
            raise UserError(f"{_prefix(where)}cannot open image {str(image)!r}: {exc}") from None
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    raise TypeError(f"{_prefix(where)}images must be PIL images or paths, got {type(image).__name__}")


def encode_prompt(
    processor_or_tokenizer: Any,
    prompt_text: str,
    images: Sequence[Any] | None = None,
    *,
    max_length: int | None = None,
    where: str = "",
) -> dict[str, torch.Tensor]:
    """Tokenise a chat-templated prompt and, with images, run the image processor.

    ``prompt_text`` holds one ``<|vision_start|><|image_pad|><|vision_end|>`` per image (the chat template
    writes them); the processor expands each ``<|image_pad|>`` to the image's token count. Returns
    ``input_ids`` and ``attention_mask`` ``[1, L]``, and with images ``pixel_values``, ``image_grid_thw``,
    ``image_counts`` (``[1]``) and ``mm_token_type_ids``. Fails with the sample's ``where`` when the
    placeholders and images disagree or the prompt exceeds ``max_length`` (never truncates: a cut
    prompt loses image tokens).
    """
    images = list(images or [])
    tokenizer = getattr(processor_or_tokenizer, "tokenizer", processor_or_tokenizer)
    n_placeholders = prompt_text.count(IMAGE_TOKEN)
    if n_placeholders != len(images):
        raise ImageTokenMismatchError(
            f"{_prefix(where)}the prompt has {n_placeholders} image placeholders ({IMAGE_TOKEN}) "
            f"but {len(images)} images were given"
        )
    if images:
        if getattr(processor_or_tokenizer, "image_processor", None) is None:
            raise UserError(f"{_prefix(where)}the prompt has images but the model has no image processor (text-only?)")
        rgb = [_as_rgb(image, where) for image in images]
        enc = processor_or_tokenizer(text=[prompt_text], images=rgb, return_tensors="pt", add_special_tokens=False)
        out = {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "pixel_values": enc["pixel_values"],
            "image_grid_thw": enc["image_grid_thw"],
            "image_counts": torch.tensor([len(rgb)]),
        }
        merge_size = int(processor_or_tokenizer.image_processor.merge_size)
        image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        video_id = tokenizer.convert_tokens_to_ids("<|video_pad|>")
        out["mm_token_type_ids"] = build_mm_token_type_ids(out["input_ids"], image_id, video_id)
        check_image_tokens(out["input_ids"], out["image_grid_thw"], merge_size, image_id, where=where)
    else:
        enc = tokenizer([prompt_text], return_tensors="pt", add_special_tokens=False)
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    length = out["input_ids"].shape[1]
    if max_length is not None and length > max_length:
        what = " (with its image tokens; truncating would break them)" if images else ""
        raise PromptTooLongError(f"{_prefix(where)}prompt is {length} tokens{what}, over the limit of {max_length}")
    return out


def take_multimodal(encoded: dict[str, Any]) -> dict[str, Any] | None:
    """The multimodal part of an :func:`encode_prompt` result (None for a text-only prompt)."""
    if encoded.get("pixel_values") is None:
        return None
    return {key: encoded[key] for key in MULTIMODAL_KEYS}


def _check_multimodal(mm: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    missing = [key for key in ("image_grid_thw", "image_counts") if key not in mm]
    if missing:
        raise KeyError(f"multimodal dict lacks {missing} (keys: {sorted(mm)}); build it with encode_prompt")
    grid = torch.as_tensor(mm["image_grid_thw"]).reshape(-1, 3)
    counts = torch.as_tensor(mm["image_counts"]).reshape(-1)
    if int(counts.sum()) != grid.shape[0]:
        raise ValueError(
            f"multimodal image_counts sum to {int(counts.sum())} but image_grid_thw has {grid.shape[0]} rows"
        )
    patches = int(grid.prod(-1).sum())
    pixel_values = mm.get("pixel_values")
    have = 0 if pixel_values is None else pixel_values.shape[0]
    if have != patches:
        raise ValueError(f"multimodal pixel_values has {have} patch rows but image_grid_thw needs {patches}")
    return grid, counts


def select_multimodal(mm: dict[str, Any], rows: Sequence[int]) -> dict[str, Any]:
    """The multimodal part of the batch rows ``rows`` (any order), their images and patches kept in order."""
    grid, counts = _check_multimodal(mm)
    image_start = torch.cumsum(counts, 0) - counts
    patch_sizes = grid.prod(-1)
    patch_start = torch.cumsum(patch_sizes, 0) - patch_sizes
    images: list[int] = []
    for row in rows:
        if not 0 <= row < counts.shape[0]:
            raise IndexError(f"row {row} is outside the multimodal batch of {counts.shape[0]} rows")
        images.extend(range(int(image_start[row]), int(image_start[row] + counts[row])))
    pixel_values = mm.get("pixel_values")
    if images and pixel_values is not None:
        pieces = [pixel_values[int(patch_start[i]) : int(patch_start[i] + patch_sizes[i])] for i in images]
        selected_pixels = torch.cat(pieces, 0)
    else:
        selected_pixels = None
    return {
        "pixel_values": selected_pixels,
        "image_grid_thw": grid[images] if images else grid[:0],
        "image_counts": counts[list(rows)] if len(rows) else counts[:0],
    }


def split_multimodal(mm: dict[str, Any], row_slices: Sequence[slice | Sequence[int]]) -> list[dict[str, Any]]:
    """Cut a batch's multimodal part by rows, one dict per slice (micro-batches)."""
    total = int(torch.as_tensor(mm["image_counts"]).numel())
    out = []
    for part in row_slices:
        rows = list(range(total))[part] if isinstance(part, slice) else list(part)
        out.append(select_multimodal(mm, rows))
    return out


def concat_multimodal(parts: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Join per-sample or per-micro-batch multimodal parts in order; None stands for one text-only row."""
    grids, counts, pixels = [], [], []
    for part in parts:
        if part is None:
            counts.append(torch.zeros(1, dtype=torch.long))
            continue
        grid, count = _check_multimodal(part)
        grids.append(grid)
        counts.append(count.to(torch.long))
        if part.get("pixel_values") is not None and part["pixel_values"].shape[0]:
            pixels.append(part["pixel_values"])
    return {
        "pixel_values": torch.cat(pixels, 0) if pixels else None,
        "image_grid_thw": torch.cat(grids, 0) if grids else torch.zeros(0, 3, dtype=torch.long),
        "image_counts": torch.cat(counts, 0) if counts else torch.zeros(0, dtype=torch.long),
    }
