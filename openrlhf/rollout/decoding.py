"""Turning sampled token ids into a response: cut at end-of-sequence, decode keeping reasoning tags.

Both engines (HF and vLLM) go through these, so the same ids give the same text and finish reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

# Tags the reward functions read; they must survive decoding even if a tokenizer made them special tokens.
KEPT_TAG = re.compile(r"^</?(think|answer)>$")


# Tokens that stand for image/video patches: a response must never contain one (every later forward would
# take it for an image slot and fail with "image features and image tokens do not match").
VISION_PLACEHOLDER_TOKENS = ("<|image_pad|>", "<|video_pad|>")


def vision_placeholder_ids(tokenizer: Any) -> list[int]:
    """Ids of :data:`VISION_PLACEHOLDER_TOKENS` that the tokenizer really has (not mapped to unk), sorted."""
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = (tokenizer.convert_tokens_to_ids(token) for token in VISION_PLACEHOLDER_TOKENS)
    return sorted({int(i) for i in ids if isinstance(i, int) and i != unk})


def eos_token_ids(tokenizer: Any, generation_config: Any = None) -> list[int]:
    """Every id that ends a response: the generation config's eos id(s) plus the tokenizer's eos id."""
    ids: list[int] = []
    for source in (getattr(generation_config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if source is None:
            continue
        for value in source if isinstance(source, (list, tuple)) else [source]:
            if value is not None and int(value) not in ids:
                ids.append(int(value))
    return ids


def trim_at_eos(token_ids: Sequence[int], eos_ids: Iterable[int]) -> tuple[list[int], str]:
    """Cut after the first end-of-sequence token (kept, as vLLM keeps it); the rest is padding.

    Returns (ids, finish_reason): "stop" when an eos token ended the response, else "length".
    """
    eos = set(eos_ids)
    ids = [int(t) for t in token_ids]
    for i, tok in enumerate(ids):
        if tok in eos:
            return ids[: i + 1], "stop"
    return ids, "length"


def _skipped_ids(tokenizer: Any) -> set[int]:
    """Special-token ids to drop from the text, except the reasoning tags."""
    size = len(tokenizer)
    cached = getattr(tokenizer, "_openrlhf_skipped_ids", None)
    if cached is not None and cached[0] == size:
        return cached[1]
    skipped: set[int] = set()
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    for token_id, token in added.items():
        if getattr(token, "special", False):
            special.add(int(token_id))
    for token_id in special:
        text = tokenizer.convert_ids_to_tokens(int(token_id))
        if not (isinstance(text, str) and KEPT_TAG.match(text)):
            skipped.add(int(token_id))
    try:
        tokenizer._openrlhf_skipped_ids = (size, skipped)
    except AttributeError:  # pragma: no cover - slotted tokenizer
        pass
    return skipped


def decode_response(tokenizer: Any, token_ids: Sequence[int]) -> str:
    """Decode response ids to text: special tokens (eos, pad, chat markers) dropped, <think>/<answer> kept.

    ``skip_special_tokens=True`` alone would also drop the tags when a tokenizer registers them as
    special tokens, so special ids are filtered here and the tags let through.
    """
    skipped = _skipped_ids(tokenizer)
    kept = [int(t) for t in token_ids if int(t) not in skipped]
    return tokenizer.decode(kept, skip_special_tokens=False, clean_up_tokenization_spaces=False)
