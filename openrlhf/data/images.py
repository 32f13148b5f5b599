"""Image paths and files: resolve a dataset's image path, read its size, open it as RGB.

Resolution order for a relative path: each image root in order (a data_config entry's ``image_folder``
first, then ``data.image_roots``), then the folder of the dataset file. Absolute paths are used as they are.
Sizes are read from the file header only (PIL opens lazily), so loading a dataset does not decode images.
Qwen2.5-VL's min/max pixel resizing is left to the Hugging Face image processor: see processor_image_kwargs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from openrlhf.utils.errors import UserError

# Embedded image bytes (Hugging Face Image columns in parquet) are written here once, named by content hash.
IMAGE_CACHE_ENV = "OPENRLHF_IMAGE_CACHE"


class ImageError(UserError):
    """An image that cannot be found, read or decoded; the message names the path and the reason."""


def resolve_image_path(
    path: str | os.PathLike[str],
    image_roots: Sequence[str | os.PathLike[str]] = (),
    dataset_dir: str | Path | None = None,
) -> Path:
    """Return the absolute path of an existing image file; raise ImageError listing where it looked."""
    text = os.fspath(path)
    if not text.strip():
        raise ImageError("empty image path")
    candidate = Path(text).expanduser()
    if candidate.is_absolute():
        if candidate.is_file():
            return candidate
        raise ImageError(f"image '{text}' not found")
    tried: list[str] = []
    folders = [Path(root).expanduser() for root in image_roots]
    if dataset_dir is not None:
        folders.append(Path(dataset_dir))
    for folder in folders:
        full = folder / candidate
        if full.is_file():
            return Path(os.path.abspath(full))
        tried.append(str(folder))
    where = ", ".join(tried) if tried else "no image roots given"
    raise ImageError(f"image '{text}' not found (looked in: {where})")


def read_image_size(path: str | os.PathLike[str], name: str | None = None) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels; ``name``: the path as the data wrote it."""
    shown = f"'{name}' ({os.fspath(path)})" if name and name != os.fspath(path) else f"'{os.fspath(path)}'"
    try:
        with Image.open(path) as img:
            return img.size
    except UnidentifiedImageError:
        raise ImageError(f"image {shown} is not a readable image file") from None
    except OSError as exc:
        raise ImageError(f"image {shown} cannot be read: {exc}") from None


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open and fully decode an image as RGB (alpha and palette images are converted)."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except UnidentifiedImageError:
        raise ImageError(f"image '{os.fspath(path)}' is not a readable image file") from None
    except OSError as exc:
        raise ImageError(f"image '{os.fspath(path)}' cannot be decoded: {exc}") from None


def load_images(paths: Sequence[str]) -> list[Image.Image]:
    """RGB images of a Sample's resolved paths, in order."""
    return [load_image(p) for p in paths]


def image_cache_dir() -> Path:
    return Path(os.environ.get(IMAGE_CACHE_ENV) or Path.home() / ".cache" / "openrlhf" / "images")


def store_embedded_image(data: bytes, cache_dir: str | Path | None = None) -> Path:
    """Write embedded image bytes to the cache once (named by their SHA-1) and return the file's path."""
    folder = Path(cache_dir) if cache_dir is not None else image_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha1(data).hexdigest() + ".img")
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def processor_image_kwargs(data_cfg: Any) -> dict[str, int]:
    """Keyword arguments for a Qwen2-VL / Qwen2.5-VL processor or image processor (``from_pretrained`` or the
    constructor): images are resized so that min_pixels <= height * width <= max_pixels, both multiples of 28.
    """
    if data_cfg.min_pixels > data_cfg.max_pixels:
        raise ValueError(
            f"data.min_pixels ({data_cfg.min_pixels}) is larger than data.max_pixels ({data_cfg.max_pixels})"
        )
    return {"min_pixels": int(data_cfg.min_pixels), "max_pixels": int(data_cfg.max_pixels)}
