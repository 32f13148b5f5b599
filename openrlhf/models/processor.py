"""The Qwen2(.5)-VL processor without its video slot.

``Qwen2_5_VLProcessor`` always loads a video processor, which needs torchvision; torchvision has no CPU
build for this torch, and RL on images never uses video. This subclass keeps the image processor and
the tokenizer only, so ``AutoImageProcessor`` picks the PIL image processor where torchvision is missing
and the fast one where it is present. Text and image handling (``<|image_pad|>`` expansion by
``image_grid_thw``) is the parent's, unchanged. ``openrlhf.models.loading.load_processor`` builds it for
every Qwen2-VL / Qwen2.5-VL checkpoint, tiny or real.
"""

from __future__ import annotations

from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor


class QwenVLImageTextProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor with an image processor and a tokenizer, and no video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    @property
    def merge_size(self) -> int:
        return int(self.image_processor.merge_size)
