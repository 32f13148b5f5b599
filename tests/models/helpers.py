"""Small builders shared by the model tests: images, chat prompts, padded batches."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw


def noise_image(seed: int, height: int, width: int) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (height, width, 3), dtype=np.uint8))


def shapes_image(color: str, height: int = 84, width: int = 84) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).ellipse((10, 10, width - 10, height - 10), fill=color)
    return image


def image_prompt(tokenizer, question: str, num_images: int = 1) -> str:
    content = [{"type": "image"}] * num_images + [{"type": "text", "text": question}]
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )


def pad_rows(rows: list[torch.Tensor], pad_id: int, left: int = 0, right: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad rows to a common length (plus ``left`` extra pads), then add ``right`` pads at the end."""
    length = max(r.numel() for r in rows) + left
    ids = torch.full((len(rows), length + right), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, length - row.numel() : length] = row
        mask[i, length - row.numel() : length] = 1
    return ids, mask
