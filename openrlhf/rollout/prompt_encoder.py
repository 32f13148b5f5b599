"""Samples to prompts an engine and the policy take: chat template, tokenisation and image processing, done
once in the driver (and by the evaluators and the server, which build prompts as training does)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from openrlhf.config import Config
from openrlhf.data.errors import RowUnusable
from openrlhf.data.sample import Sample
from openrlhf.rollout.base import GenerationOutput, GenerationRequest


@dataclass
class EncodedPrompt:
    """A prompt ready for an engine and for the policy's forward (with its images' tensors)."""

    sample: Sample
    request: GenerationRequest
    multimodal: dict[str, torch.Tensor] | None = None


class PromptEncoder:
    """Chat template + tokenisation (+ image processing) of samples, done once in the driver."""

    def __init__(self, cfg: Config) -> None:
        from openrlhf.models.loading import load_processor, load_tokenizer

        self.cfg = cfg
        path = cfg.actor.model_name_or_path
        self.tokenizer = load_tokenizer(path, padding_side="left")
        self.processor = load_processor(path, min_pixels=cfg.data.min_pixels, max_pixels=cfg.data.max_pixels)

    @property
    def template_owner(self):
        return self.processor if self.processor is not None else self.tokenizer

    def encode(self, sample: Sample, images: list | None = None) -> EncodedPrompt:
        """The sample's prompt for an engine; ``images``: the sample's images already opened (PIL, in the order
        of its image parts, e.g. decoded from a request) instead of reading ``sample.images`` from disk."""
        from openrlhf.data.prompts import build_prompt_text
        from openrlhf.models.vlm_inputs import encode_prompt, take_multimodal

        text = build_prompt_text(sample, self.template_owner, self.cfg.data)
        if images is None:
            images = [_open_rgb(path, sample.where) for path in sample.images]
        if images and self.processor is None:
            raise RowUnusable(
                f"{sample.where}: the row has images but {self.cfg.actor.model_name_or_path} is text-only"
            )
        encoded = encode_prompt(
            self.processor if images else self.tokenizer,
            text,
            images,
            max_length=self.cfg.data.prompt_max_len,
            where=sample.where,
        )
        ids = encoded["input_ids"][0].tolist()
        multimodal = take_multimodal(encoded)
        if multimodal is not None and "image_size" in sample.label_fields and "input_size" not in sample.label_fields:
            sample = _with_input_size(sample, multimodal["image_grid_thw"][0], self.processor)
        return EncodedPrompt(sample, GenerationRequest(text, ids, images), multimodal)

    def decode_response(self, output: GenerationOutput) -> str:
        """The response as OpenRLHF's remote-RM client sends it: decoded with special tokens kept."""
        return self.tokenizer.decode(output.output_token_ids, skip_special_tokens=False)


def _with_input_size(sample: Sample, grid_thw: torch.Tensor, processor) -> Sample:
    """A copy of a box-task sample whose label also carries ``input_size`` = [w, h] of the resized image the
    model sees (grid_w * patch_size, grid_h * patch_size), so the reward rescales boxes to ``image_size``."""
    import dataclasses

    patch = int(processor.image_processor.patch_size)
    input_size = [int(grid_thw[2]) * patch, int(grid_thw[1]) * patch]
    return dataclasses.replace(sample, label_fields={**sample.label_fields, "input_size": input_size})


def _open_rgb(path: str, where: str):
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise RowUnusable(f"{where}: cannot read image {path}: {exc}") from exc
