"""OpenAI chat messages -> the project's :class:`~openrlhf.data.sample.Sample` and its images.

Each message's content is a string or a list of parts:

- ``{"type": "text", "text": str}``;
- ``{"type": "image_url", "image_url": {"url": "data:image/<kind>;base64,<data>"}}``: the image inline. URLs
  that would make the server fetch something (``http://``, ``https://``, files) are refused: a model server on
  loopback has no business reaching out, and a judge's caller always has the bytes.

A message with images becomes Hugging Face list content, ``{"type": "text"}`` and ``{"type": "image"}`` parts in
the request's order (the processor's chat template writes each image's placeholder where its part stood); a
message with text parts only becomes their text joined by newlines, so text-only chat templates (which expect
a string) render it. ``developer`` is OpenAI's newer name for ``system``. Every refusal is a 400
:class:`~openrlhf.serve.schema.RequestError` naming the field, e.g. ``messages[1].content[2].image_url.url``.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

from PIL import Image

from openrlhf.data.sample import Sample
from openrlhf.serve.schema import ChatMessage, RequestError

_DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),")
_PART_SHAPES = (
    '{"type": "text", "text": "..."} or {"type": "image_url", "image_url": {"url": "data:image/...;base64,..."}}'
)


def _bad(param: str, message: str) -> RequestError:
    return RequestError(400, param, f"{param}: {message}")


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def decode_data_url(url: str, param: str) -> Image.Image:
    """The RGB image in a ``data:image/...;base64,...`` URL; a 400 naming ``param`` for anything else."""
    if re.match(r"(?i)(https?|ftp|file)://", url):
        raise _bad(
            param,
            f"{url[:80]!r} is a URL to fetch; this server does not fetch URLs: send the image inline as a data URL "
            "(data:image/png;base64,...)",
        )
    match = _DATA_URL.match(url)
    if match is None:
        raise _bad(param, f"expected a data URL (data:image/png;base64,...), got {url[:40]!r}")
    mime, params = match.group("mime").strip().lower(), match.group("params").lower()
    if mime and not mime.startswith("image/"):
        raise _bad(param, f"the data URL holds {mime!r}, not an image")
    if "base64" not in params.split(";"):
        raise _bad(param, "the data URL must be base64-encoded (data:image/png;base64,...)")
    try:
        raw = base64.b64decode("".join(url[match.end() :].split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad(param, f"the data URL's payload is not valid base64: {exc}") from None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _bad(param, f"cannot read the image ({len(raw)} bytes): {exc}") from None


def _content(content: Any, param: str, role: str, images: list[Image.Image]) -> str | list[dict[str, Any]]:
    """One message's content in Hugging Face form; its images are appended to ``images``."""
    if content is None:
        if role == "assistant":
            return ""
        raise _bad(param, "is missing: give a string or a list of content parts")
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        got = "an empty list" if isinstance(content, list) else _type_name(content)
        raise _bad(param, f"must be a string or a non-empty list of content parts, got {got}")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise _bad(f"{where}.text", f"must be a string, got {_type_name(part.get('text'))}")
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image_url = part.get("image_url")
            if not isinstance(image_url, dict) or not isinstance(image_url.get("url"), str):
                raise _bad(
                    f"{where}.image_url", f'must be {{"url": "data:image/...;base64,..."}}, got {image_url!r:.60}'
                )
            images.append(decode_data_url(image_url["url"], f"{where}.image_url.url"))
            parts.append({"type": "image"})
        else:
            got = f"type {kind!r:.40}" if isinstance(part, dict) else _type_name(part)
            raise _bad(where, f"a content part must be {_PART_SHAPES}; got {got}")
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def to_sample(messages: list[ChatMessage]) -> tuple[Sample, list[Image.Image]]:
    """The request's conversation as a Sample (no label, no task) and its images in order of appearance."""
    images: list[Image.Image] = []
    converted = []
    for i, message in enumerate(messages):
        role = "system" if message.role == "developer" else message.role
        converted.append({"role": role, "content": _content(message.content, f"messages[{i}].content", role, images)})
    if not any(m["role"] == "user" for m in converted):
        raise RequestError(400, "messages", "messages: the conversation has no user message")
    return Sample(converted, source="request"), images
