"""Each dataset format loads into Samples with its messages, images in order, labels, tasks and lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from openrlhf.data import DatasetError, load_samples

from .helpers import EXAMPLES, data_cfg, write_json, write_jsonl, write_png


def names(sample) -> list[str]:
    return [Path(p).name for p in sample.images]


def test_omnirl_mixed_text_and_image_rows():
    result = load_samples([str(EXAMPLES / "omnirl_mixed.json")], data_cfg())
    samples = result.samples
    assert not result.skipped
    assert [s.line for s in samples] == [2, 3, 4, 5, 6, 7]  # the line each object of the JSON list starts on
    assert all(s.source == str(EXAMPLES / "omnirl_mixed.json") for s in samples)
    text_only = samples[0]
    assert text_only.messages == [{"role": "user", "content": "What is 7 + 5?"}]
    assert text_only.images == [] and text_only.label == "12" and text_only.task == "math"
    # an image row without placeholders: the image goes before the text (R1-V convention)
    assert samples[1].messages[0]["content"] == [
        {"type": "image"},
        {"type": "text", "text": "How many shapes are in the image?"},
    ]
    assert names(samples[1]) == ["two_shapes.png"] and samples[1].task == "counting"
    assert samples[2].images == [] and samples[2].task is None  # "image": [] is text-only
    assert names(samples[3]) == ["red_circle.png"]  # "image" given as a plain string
    assert samples[5].label == "7"  # a numeric solution becomes a string
    assert all(Path(p).is_absolute() for s in samples for p in s.images)


def test_multi_image_row_keeps_placeholder_order():
    sample = load_samples([str(EXAMPLES / "omnirl_mixed.json")], data_cfg()).samples[4]
    assert names(sample) == ["red_circle.png", "three_shapes.png"]
    kinds = [part["type"] for part in sample.messages[0]["content"]]
    assert kinds == ["image", "text", "image", "text"]
    assert sample.messages[0]["content"][1]["text"] == "has one shape and"


def test_vlm_r1_data_config_with_image_folders_and_sampling():
    samples = load_samples([str(EXAMPLES / "data_config.yaml")], data_cfg()).samples
    rec = [s for s in samples if s.source.endswith("vlm_r1_rec.jsonl")]
    extra = [s for s in samples if s.source.endswith("vlm_r1_extra.jsonl")]
    assert len(rec) == 5 and len(extra) == 2  # first:2 of the three rows of the second file
    assert [s.id for s in rec] == ["1", "2", "3", "4", "5"] and [s.id for s in extra] == ["b1", "b2"]
    assert [s.task for s in rec] == ["rec", "choice", None, "counting", "rec"]  # default->rec, mcq->choice, iou->rec
    assert rec[0].label == "[8, 8, 30, 30]"
    assert rec[0].label_fields == {"image_size": [56, 56]}  # read from the image header
    assert extra[1].label_fields == {"image_size": [84, 42]}  # a non-square image: width first
    assert rec[0].reward_label() == {"solution": "[8, 8, 30, 30]", "task": "rec", "image_size": [56, 56]}
    assert names(rec[3]) == ["two_shapes.png", "green_triangle.png"]
    assert names(extra[0]) == ["yellow_square.png"] and "images_b" in extra[0].images[0]
    assert rec[2].messages == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many shapes are there?"}]}
    ]


def test_vlm_r1_image_size_from_row_wins(tmp_path):
    write_png(tmp_path / "img.png", (40, 30))
    row = {
        "image": "img.png",
        "conversations": [{"from": "human", "value": "<image>Box?"}, {"from": "gpt", "value": "[1, 2, 3, 4]"}],
    }
    write_jsonl(
        tmp_path / "d.jsonl",
        [
            {**row, "accu_reward_method": "iou", "image_size": [640, 480]},
            {**row, "accu_reward_method": "iou", "width": 320, "height": 200},
            {**row, "accu_reward_method": "iou"},
        ],
    )
    samples = load_samples([str(tmp_path / "d.jsonl")], data_cfg()).samples
    assert [s.label_fields["image_size"] for s in samples] == [[640, 480], [320, 200], [40, 30]]


def test_vlm_r1_image_roots_and_multi_turn(tmp_path):
    root = tmp_path / "imgs"
    write_png(root / "a.png")
    conv = [
        {"from": "system", "value": "Be short."},
        {"from": "human", "value": "<image>What is it?"},
        {"from": "gpt", "value": "A red box."},
        {"from": "human", "value": "And its colour?"},
        {"from": "gpt", "value": 7.5},
    ]
    write_jsonl(tmp_path / "data" / "d.jsonl", [{"id": 3, "image": "a.png", "conversations": conv}])
    sample = load_samples([str(tmp_path / "data" / "d.jsonl")], data_cfg(image_roots=[str(root)])).samples[0]
    assert [m["role"] for m in sample.messages] == ["system", "user", "assistant", "user"]
    assert sample.label == "7.5" and sample.id == "3"
    assert sample.images == [str(root / "a.png")]


def test_r1_reward_rows():
    samples = load_samples([str(EXAMPLES / "r1_reward.jsonl")], data_cfg()).samples
    assert [s.task for s in samples] == ["preference", "preference"]
    assert [s.label for s in samples] == ["<answer>1</answer>", "<answer>2</answer>"]
    assert samples[0].label_fields == {"question": "What colour is the circle?"}
    content = samples[1].messages[0]["content"]
    assert [p["type"] for p in content] == ["text", "image", "image"]  # the order of the message's parts
    assert names(samples[1]) == ["red_circle.png", "three_shapes.png"]


def test_r1_reward_message_as_a_list_and_answer_as_a_string(tmp_path):
    write_png(tmp_path / "x.png")
    message = [{"role": "user", "content": [{"type": "image", "image": "x.png"}, {"type": "text", "text": "Which?"}]}]
    write_jsonl(tmp_path / "r.jsonl", [{"message": message, "question": "q", "answer": "<answer>2</answer>"}])
    sample = load_samples([str(tmp_path / "r.jsonl")], data_cfg()).samples[0]
    assert sample.label == "<answer>2</answer>" and names(sample) == ["x.png"]


def test_hf_jsonl_chat_and_string_prompts():
    samples = load_samples([str(EXAMPLES / "hf_chat.jsonl")], data_cfg()).samples
    assert samples[0].messages[0] == {"role": "system", "content": "Answer briefly."}
    assert samples[0].messages[1]["content"][0] == {"type": "image"}
    assert names(samples[0]) == ["blue_square.png"] and samples[0].label == "blue" and samples[0].task == "exact"
    assert samples[1].messages == [{"role": "user", "content": "What is 12 - 5?"}]
    assert [s.task for s in samples] == ["exact", "math", "yes_no"]


def test_hf_parquet():
    samples = load_samples([str(EXAMPLES / "hf_prompts.parquet")], data_cfg()).samples
    assert [s.label for s in samples] == ["7", "4", "2"]
    assert [s.line for s in samples] == [1, 2, 3]
    assert names(samples[2]) == ["two_shapes.png"] and samples[2].task == "counting"


def test_hf_configurable_keys():
    path = str(EXAMPLES / "hf_custom_keys.jsonl")
    with pytest.raises(DatasetError, match="cannot tell the dataset format"):
        load_samples([path], data_cfg())
    samples = load_samples([path], data_cfg(input_key="query", label_key="response")).samples
    assert [s.messages[0]["content"] for s in samples] == ["What is 6 * 7?", "What is 15 + 27?"]
    assert [s.label for s in samples] == ["42", "42"]


def test_format_override_reads_any_columns_as_hf():
    cfg = data_cfg(format="hf", input_key="problem", label_key="solution")
    samples = load_samples([str(EXAMPLES / "omnirl_mixed.json")], cfg).samples
    assert len(samples) == 6 and samples[0].label == "12"


def test_parquet_with_embedded_images_and_saved_dataset(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("OPENRLHF_IMAGE_CACHE", str(tmp_path / "cache"))
    buffer = io.BytesIO()
    Image.new("RGB", (12, 10), (0, 0, 255)).save(buffer, format="PNG")
    features = datasets.Features(
        {"prompt": datasets.Value("string"), "label": datasets.Value("string"), "image": datasets.Image()}
    )
    rows = {"prompt": ["<image>Colour?"], "label": ["blue"], "image": [{"bytes": buffer.getvalue(), "path": None}]}
    dataset = datasets.Dataset.from_dict(rows, features=features)
    dataset.to_parquet(str(tmp_path / "emb.parquet"))
    dataset.save_to_disk(str(tmp_path / "saved"))
    for path in (tmp_path / "emb.parquet", tmp_path / "saved"):
        sample = load_samples([str(path)], data_cfg()).samples[0]
        assert sample.label == "blue" and len(sample.images) == 1
        assert Path(sample.images[0]).parent == tmp_path / "cache"
        assert Image.open(sample.images[0]).size == (12, 10)


def test_sampling_strategies_and_max_samples(tmp_path):
    rows = [{"problem": f"What is {i} + 1?", "solution": str(i + 1)} for i in range(10)]
    path = str(write_json(tmp_path / "ten.json", rows))

    def labels(**kw):
        return [s.label for s in load_samples([path], data_cfg(**kw), seed=3).samples]

    assert labels(sampling_strategy="first:3") == ["1", "2", "3"]
    assert labels(sampling_strategy="end:2") == ["9", "10"]
    picked = labels(sampling_strategy="random:50%")
    assert len(picked) == 5 and picked == labels(sampling_strategy="random:50%")  # same seed, same rows
    assert picked == sorted(picked, key=int)  # order kept
    assert labels(max_samples=4) == ["1", "2", "3", "4"]


def test_json_list_line_numbers_follow_the_text(tmp_path):
    text = '[{"problem": "a", "solution": "1"},\n\n  {"problem": "b",\n   "solution": "2"}, {"problem": "c", "solution": "3"}]'
    (tmp_path / "l.json").write_text(text)
    samples = load_samples([str(tmp_path / "l.json")], data_cfg()).samples
    assert [(s.label, s.line) for s in samples] == [("1", 1), ("2", 3), ("3", 4)]


def test_jsonl_under_a_json_name_and_blank_lines(tmp_path):
    (tmp_path / "x.json").write_text('{"problem": "a", "solution": "1"}\n\n{"problem": "b", "solution": "2"}\n')
    samples = load_samples([str(tmp_path / "x.json")], data_cfg()).samples
    assert [(s.label, s.line) for s in samples] == [("1", 1), ("2", 3)]


def test_several_paths_keep_their_order():
    paths = [str(EXAMPLES / "hf_chat.jsonl"), str(EXAMPLES / "omnirl_mixed.json")]
    result = load_samples(paths, data_cfg())
    assert [f.path for f in result.files] == paths
    assert [f.format for f in result.files] == ["hf", "omnirl"]
    assert result.samples[0].source == paths[0] and result.samples[-1].source == paths[1]


def test_rows_survive_json_round_trip_of_reward_label():
    samples = load_samples([str(EXAMPLES / "data_config.yaml")], data_cfg()).samples
    for sample in samples:
        json.dumps(sample.reward_label())  # what the reward client sends must be JSON


def test_response_field_is_the_sft_target(tmp_path):
    rows = [
        {"problem": "What is 1 + 1?", "solution": "2", "response": "<think>1 + 1 = 2</think><answer>2</answer>"},
        {"problem": "What is 2 + 2?", "solution": "4"},
        {"problem": "What is 3 + 3?", "solution": "6", "response": 6},
    ]
    result = load_samples([str(write_json(tmp_path / "s.json", rows))], data_cfg(on_invalid="skip"))
    assert [s.response for s in result.samples] == ["<think>1 + 1 = 2</think><answer>2</answer>", None]
    assert [s.label for s in result.samples] == ["2", "4"]
    assert "field 'response' (the SFT target) must be a non-empty string" in result.skipped[0].reason


def test_rows_with_more_images_than_max_images_per_prompt_are_named():
    path = str(EXAMPLES / "omnirl_mixed.json")
    # row 5 (object 5, starting on line 6) holds two images
    with pytest.raises(DatasetError) as info:
        load_samples([path], data_cfg(max_images_per_prompt=1))
    assert f"{path}:6: 2 images, more than data.max_images_per_prompt=1" in str(info.value)
    assert len(info.value.errors) == 1
    kept = load_samples([path], data_cfg(max_images_per_prompt=1, on_invalid="skip"))
    assert [s.line for s in kept.samples] == [2, 3, 4, 5, 7]
    assert len(load_samples([path], data_cfg(max_images_per_prompt=2)).samples) == 6
