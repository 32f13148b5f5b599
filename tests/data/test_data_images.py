"""Image paths resolve in the documented order; images open as RGB; the Qwen2-VL processor honours min/max pixels."""

from __future__ import annotations

import pytest
from PIL import Image

from openrlhf.data import ImageError, load_image, processor_image_kwargs, resolve_image_path
from openrlhf.data.images import read_image_size, store_embedded_image

from .helpers import data_cfg, write_png


def test_resolution_order(tmp_path):
    first, second, data_dir = tmp_path / "first", tmp_path / "second", tmp_path / "data"
    write_png(second / "x.png")
    write_png(data_dir / "x.png")
    write_png(data_dir / "only_here.png")
    assert resolve_image_path("x.png", [first, second], data_dir) == second / "x.png"  # roots before the file's folder
    write_png(first / "x.png")
    assert resolve_image_path("x.png", [first, second], data_dir) == first / "x.png"  # roots in order
    assert resolve_image_path("only_here.png", [first, second], data_dir) == data_dir / "only_here.png"
    absolute = write_png(tmp_path / "abs.png")
    assert resolve_image_path(str(absolute), [first], data_dir) == absolute


def test_resolved_paths_are_absolute(tmp_path, monkeypatch):
    write_png(tmp_path / "imgs" / "a.png")
    monkeypatch.chdir(tmp_path)
    path = resolve_image_path("a.png", ["imgs"])
    assert path.is_absolute() and path == tmp_path / "imgs" / "a.png"


def test_not_found_lists_where_it_looked(tmp_path):
    with pytest.raises(ImageError) as info:
        resolve_image_path("sub/none.png", [tmp_path / "r1"], tmp_path / "data")
    message = str(info.value)
    assert (
        "image 'sub/none.png' not found" in message
        and str(tmp_path / "r1") in message
        and str(tmp_path / "data") in message
    )
    with pytest.raises(ImageError, match="image '/no/such.png' not found"):
        resolve_image_path("/no/such.png")
    with pytest.raises(ImageError, match="empty image path"):
        resolve_image_path("  ")


def test_load_image_converts_to_rgb(tmp_path):
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (5, 4), (10, 20, 30, 128)).save(rgba)
    palette = tmp_path / "p.png"
    Image.new("P", (3, 3), 0).save(palette)
    for path in (rgba, palette):
        image = load_image(path)
        assert image.mode == "RGB"
    assert load_image(rgba).size == (5, 4) and load_image(rgba).getpixel((0, 0)) == (10, 20, 30)


def test_size_reads_the_header_only_and_load_decodes(tmp_path):
    full = tmp_path / "full.png"
    Image.effect_noise((64, 48), 50).convert("RGB").save(full)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(full.read_bytes()[:200])  # header intact, pixel data cut
    assert read_image_size(truncated) == (64, 48)
    with pytest.raises(ImageError, match="cannot be decoded"):
        load_image(truncated)


def test_not_an_image(tmp_path):
    bogus = tmp_path / "bogus.png"
    bogus.write_text("hello")
    with pytest.raises(ImageError, match="is not a readable image file"):
        read_image_size(bogus, "bogus.png")
    with pytest.raises(ImageError, match="is not a readable image file"):
        load_image(bogus)


def test_embedded_bytes_are_stored_once(tmp_path):
    data = (write_png(tmp_path / "src.png")).read_bytes()
    first = store_embedded_image(data, tmp_path / "cache")
    second = store_embedded_image(data, tmp_path / "cache")
    assert first == second and first.read_bytes() == data and len(list((tmp_path / "cache").iterdir())) == 1


def test_processor_kwargs_drive_qwen2_vl_resizing():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    cfg = data_cfg(min_pixels=56 * 56, max_pixels=112 * 112)
    assert processor_image_kwargs(cfg) == {"min_pixels": 3136, "max_pixels": 12544}
    processor = Qwen2VLImageProcessorPil(**processor_image_kwargs(cfg))
    for size in [(20, 20), (56, 56), (448, 448), (84, 42)]:
        grid = processor(images=[Image.new("RGB", size)], return_tensors="np")["image_grid_thw"][0]
        pixels = int(grid[1]) * int(grid[2]) * 14 * 14
        assert cfg.min_pixels <= pixels <= cfg.max_pixels, (size, grid)
    big = processor(images=[Image.new("RGB", (448, 448))], return_tensors="np")["image_grid_thw"][0]
    assert big.tolist() == [1, 8, 8]  # 448x448 shrunk to 112x112


def test_processor_kwargs_reject_min_above_max():
    with pytest.raises(ValueError, match="data.min_pixels"):
        processor_image_kwargs(data_cfg(min_pixels=10_000, max_pixels=100))
