"""Prompt encoding with images, the image-token check, and multimodal batch bookkeeping."""

from __future__ import annotations

import pytest
import torch

from openrlhf.models.loading import load_processor, load_tokenizer
from openrlhf.models.vlm_inputs import (
    ImageTokenMismatchError,
    PromptTooLongError,
    build_mm_token_type_ids,
    check_image_tokens,
    concat_multimodal,
    encode_prompt,
    select_multimodal,
    split_multimodal,
    take_multimodal,
)

from .helpers import image_prompt, noise_image


@pytest.fixture(scope="module")
def processor(tiny_vlm_path):
    return load_processor(tiny_vlm_path)


def test_encode_prompt_expands_image_tokens_and_reports_everything(processor, tmp_path):
    tok = processor.tokenizer
    path = tmp_path / "img.png"
    noise_image(3, 56, 56).save(path)
    enc = encode_prompt(processor, image_prompt(tok, "Two images.", 2), [noise_image(0, 112, 112), str(path)])
    assert enc["image_grid_thw"].tolist() == [[1, 8, 8], [1, 4, 4]]
    assert enc["image_counts"].tolist() == [2]
    assert enc["pixel_values"].shape == (64 + 16, 3 * 2 * 14 * 14)
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    assert int((enc["input_ids"] == image_id).sum()) == 16 + 4
    assert torch.equal(enc["mm_token_type_ids"], (enc["input_ids"] == image_id).long())
    text_only = encode_prompt(tok, "What is 1 + 1?", [])
    assert set(text_only) == {"input_ids", "attention_mask"} and take_multimodal(text_only) is None


def test_encode_prompt_errors_name_the_sample(processor, tiny_lm_path):
    tok = processor.tokenizer
    with pytest.raises(ImageTokenMismatchError, match=r"data.jsonl:7: the prompt has 1 image placeholders .* 2 images"):
        encode_prompt(processor, image_prompt(tok, "q"), [noise_image(0, 56, 56)] * 2, where="data.jsonl:7")
    with pytest.raises(ValueError, match="no image processor"):
        encode_prompt(load_tokenizer(tiny_lm_path), image_prompt(tok, "q"), [noise_image(0, 56, 56)])
    with pytest.raises(PromptTooLongError, match=r"x.json:2: prompt is \d+ tokens \(with its image tokens"):
        encode_prompt(processor, image_prompt(tok, "q"), [noise_image(0, 112, 112)], max_length=12, where="x.json:2")
    with pytest.raises(ValueError, match="cannot open image 'nope.png'"):
        encode_prompt(processor, image_prompt(tok, "q"), ["nope.png"])


def test_check_image_tokens_catches_a_truncated_prompt_before_the_model(processor):
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    enc = encode_prompt(processor, image_prompt(tok, "Describe the picture."), [noise_image(0, 112, 112)])
    ids, grid = enc["input_ids"][0], enc["image_grid_thw"]
    check_image_tokens(ids, grid, 2, image_id)  # intact: passes
    cut = ids[:10]  # what a right-truncating length limit leaves
    with pytest.raises(
        ImageTokenMismatchError, match=r"a.jsonl:3: the batch holds \d+ image tokens .* need 16 .*length limit"
    ):
        check_image_tokens(cut, grid, 2, image_id, where="a.jsonl:3")
    batch = torch.stack([ids, ids])
    check_image_tokens(batch, torch.cat([grid, grid]), 2, image_id, image_counts=[1, 1])
    with pytest.raises(ImageTokenMismatchError, match=r"row 0 holds 16 image tokens .* need 32"):
        check_image_tokens(batch, torch.cat([grid, grid]), 2, image_id, image_counts=[2, 0])


def _mm(grids, counts, dim=4):
    grid = torch.tensor(grids, dtype=torch.long).reshape(-1, 3)
    patches = int(grid.prod(-1).sum())
    return {
        "pixel_values": torch.arange(patches * dim, dtype=torch.float32).reshape(patches, dim) if patches else None,
        "image_grid_thw": grid,
        "image_counts": torch.tensor(counts, dtype=torch.long),
    }


def test_select_split_concat_keep_each_rows_patches():
    mm = _mm([[1, 2, 2], [1, 2, 4], [1, 4, 2]], [1, 0, 2])  # row 0: image 0; row 1: none; row 2: images 1, 2
    row2 = select_multimodal(mm, [2])
    assert row2["image_grid_thw"].tolist() == [[1, 2, 4], [1, 4, 2]]
    assert torch.equal(row2["pixel_values"], mm["pixel_values"][4:20])
    empty = select_multimodal(mm, [1])
    assert empty["pixel_values"] is None and empty["image_counts"].tolist() == [0]
    swapped = select_multimodal(mm, [2, 0])
    assert torch.equal(swapped["pixel_values"], torch.cat([mm["pixel_values"][4:20], mm["pixel_values"][:4]]))
    parts = split_multimodal(mm, [slice(0, 2), [2]])
    joined = concat_multimodal(parts)
    assert all(torch.equal(joined[k], mm[k]) for k in mm)
    with_text_rows = concat_multimodal([None, parts[1], None])
    assert with_text_rows["image_counts"].tolist() == [0, 2, 0]
    with pytest.raises(ValueError, match="image_counts sum to 2 but image_grid_thw has 3"):
        select_multimodal({**mm, "image_counts": torch.tensor([1, 0, 1])}, [0])
    with pytest.raises(ValueError, match="pixel_values has 19 patch rows but image_grid_thw needs 20"):
        select_multimodal({**mm, "pixel_values": mm["pixel_values"][:19]}, [0])
    with pytest.raises(KeyError, match="image_counts"):
        select_multimodal({"pixel_values": None, "image_grid_thw": mm["image_grid_thw"]}, [0])
    with pytest.raises(IndexError, match="row 5"):
        select_multimodal(mm, [5])


def test_mm_token_type_ids():
    ids = torch.tensor([[1, 7, 7, 2, 8, 3]])
    assert build_mm_token_type_ids(ids, 7, 8).tolist() == [[0, 1, 1, 0, 2, 0]]
