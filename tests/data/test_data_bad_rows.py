"""Every kind of bad row is named FILE:LINE: reason; with on_invalid=skip it is dropped and counted."""

from __future__ import annotations

import json
import logging

import pytest

from openrlhf.data import DatasetError, load_samples

from .helpers import EXAMPLES, PLANTED, data_cfg, write_json, write_jsonl, write_png


def test_planted_rows_match_the_example_script(example_script):
    assert {name: line for name, (_, line, _) in example_script.BAD_FILES.items()} == {
        name: line for name, (line, _) in PLANTED.items()
    }


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_bad_row_raises_with_file_and_line(name):
    path = str(EXAMPLES / name)
    line, reason = PLANTED[name]
    with pytest.raises(DatasetError) as info:
        load_samples([path], data_cfg())
    assert f"{path}:{line}: " in str(info.value) and reason in str(info.value)
    assert isinstance(info.value, ValueError)
    assert [(e.file, e.line) for e in info.value.errors] == [(path, line)]


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_bad_row_is_skipped_and_the_rest_load(name):
    path = str(EXAMPLES / name)
    line, reason = PLANTED[name]
    result = load_samples([path], data_cfg(on_invalid="skip"))
    assert len(result.skipped) == 1
    error = result.skipped[0]
    assert (error.file, error.line) == (path, line) and reason in error.reason
    assert str(error) == f"{path}:{line}: {error.reason}"
    assert len(result.samples) == result.files[0].rows - 1
    assert line not in [s.line for s in result.samples]


def test_skipped_rows_are_counted_in_the_log(caplog):
    path = str(EXAMPLES / "bad" / "unreadable_image.jsonl")
    with caplog.at_level(logging.WARNING, logger="openrlhf.data"):
        load_samples([path], data_cfg(on_invalid="skip"))
    assert f"{path}: skipped 1 invalid row(s) of 3" in caplog.text


def test_errors_of_all_files_are_reported_together():
    paths = [str(EXAMPLES / name) for name in sorted(PLANTED)]
    with pytest.raises(DatasetError) as info:
        load_samples(paths, data_cfg())
    assert len(info.value.errors) == len(PLANTED)
    for path, name in zip(paths, sorted(PLANTED), strict=True):
        assert f"{path}:{PLANTED[name][0]}: " in str(info.value)


def test_error_listing_is_capped(tmp_path):
    rows = ["not json"] * 30 + [{"problem": "p", "solution": "s"}]
    path = str(write_jsonl(tmp_path / "many.jsonl", rows))
    with pytest.raises(DatasetError) as info:
        load_samples([path], data_cfg())
    message = str(info.value)
    assert message.startswith("30 invalid rows")
    assert f"{path}:20: " in message and f"{path}:21: " not in message
    assert "... and 10 more" in message and len(info.value.errors) == 30


def vlm_row(value: str, image, answer: str = "x") -> dict:
    row = {"conversations": [{"from": "human", "value": value}, {"from": "gpt", "value": answer}]}
    if image is not None:
        row["image"] = image
    return row


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (["a", "list"], "a row must be a JSON object, got list"),
        (vlm_row("What?", "a.png"), "1 image(s) but no <image> placeholder"),
        (vlm_row("<image>What?", None), "1 <image> placeholder(s) but 0 image(s)"),
        (vlm_row("<image>What?", ["a.png", "a.png"]), "1 <image> placeholder(s) but 2 image(s)"),
        (vlm_row("<image>What?", 5), "field 'image' must be an image path or a list of image paths"),
        ({"image": "a.png", "conversations": [{"from": "human", "value": "<image>Q"}]}, "at least a human turn"),
        (
            {"image": "a.png", "conversations": [{"from": "gpt", "value": "A"}, {"from": "human", "value": "<image>"}]},
            "the last turn of 'conversations' must be the gpt answer",
        ),
        (
            {"image": "a.png", "conversations": [{"from": "robot", "value": "<image>"}, {"from": "gpt", "value": "A"}]},
            "'robot'",
        ),
        ({**vlm_row("<image>Q", "a.png"), "accu_reward_method": 3}, "task must be a non-empty string"),
        ({"image": "a.png", "conversations": []}, "field 'conversations' is empty"),
        (vlm_row("<image>Q", "a.png", answer=None), "'conversations[-1].value' must be a string, number"),
    ],
)
def test_vlm_r1_row_errors(tmp_path, row, reason):
    write_png(tmp_path / "a.png")
    good = vlm_row("<image>Fine?", "a.png")
    path = str(write_jsonl(tmp_path / "d.jsonl", [good, row]))
    result = load_samples([path], data_cfg(on_invalid="skip"))
    assert len(result.samples) == 1
    assert [(e.line, reason in e.reason) for e in result.skipped] == [(2, True)], result.skipped


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"message": "[{not json", "answer": ["<answer>1</answer>"]}, "field 'message' is not a valid JSON chat"),
        (
            {"message": "[]", "answer": ["<answer>1</answer>"]},
            "field 'message' must be a non-empty list of chat messages",
        ),
        ({"message": json.dumps([{"role": "user", "content": "hi"}]), "answer": []}, "field 'answer' is empty"),
        (
            {
                "message": json.dumps([{"role": "user", "content": [{"type": "video", "video": "v.mp4"}]}]),
                "answer": "1",
            },
            "videos are not supported",
        ),
        (
            {
                "message": json.dumps([{"role": "user", "content": [{"type": "image", "image": "gone.png"}]}]),
                "answer": "1",
            },
            "not found",
        ),
        ({"message": json.dumps([{"role": "judge", "content": "hi"}]), "answer": "1"}, "role is 'judge'"),
    ],
)
def test_r1_reward_row_errors(tmp_path, row, reason):
    good = {"message": json.dumps([{"role": "user", "content": "Which is better?"}]), "answer": ["<answer>1</answer>"]}
    path = str(write_jsonl(tmp_path / "r.jsonl", [good, row]))
    result = load_samples([path], data_cfg(on_invalid="skip"))
    assert len(result.samples) == 1
    assert len(result.skipped) == 1 and result.skipped[0].line == 2 and reason in result.skipped[0].reason


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"prompt": "Q", "task": "math"}, "missing field 'label'"),
        ({"prompt": "<image>Q", "label": "A"}, "1 <image> placeholder(s) but 0 image(s)"),
        (
            {"prompt": [{"role": "user", "content": [{"type": "image"}]}], "label": "A"},
            "more image parts than the row has images",
        ),
        ({"prompt": [{"role": "user", "content": "Q"}], "label": "A", "image": ["a.png", "a.png"]}, None),
        (
            {"prompt": [{"role": "user", "content": [{"type": "image"}]}], "label": "A", "image": ["a.png", "a.png"]},
            "2 image(s) but 1",
        ),
        ({"prompt": [{"role": "assistant", "content": "Q"}], "label": "A"}, "has no user message"),
        ({"prompt": 12, "label": "A"}, "must be a non-empty list of chat messages"),
        ({"prompt": "Q", "label": None}, "field 'label' is empty"),
    ],
)
def test_hf_row_errors(tmp_path, row, reason):
    write_png(tmp_path / "a.png")
    path = str(write_jsonl(tmp_path / "h.jsonl", [{"prompt": "fine", "label": "ok"}, row]))
    result = load_samples([path], data_cfg(on_invalid="skip"))
    if reason is None:  # images without placeholders go before the text: valid
        assert not result.skipped and len(result.samples[1].images) == 2
        return
    assert len(result.skipped) == 1 and result.skipped[0].line == 2 and reason in result.skipped[0].reason


def test_broken_json_list_keeps_rows_before_the_error(tmp_path):
    text = '[\n  {"problem": "a", "solution": "1"},\n  {"problem": "b", "solution": \n  {"problem": "c"}\n]'
    (tmp_path / "broken.json").write_text(text)
    result = load_samples([str(tmp_path / "broken.json")], data_cfg(on_invalid="skip"))
    assert [s.label for s in result.samples] == ["1"]
    error = result.skipped[0]
    assert error.line == 3 and "at line 5 column 1; the rest of the file was not read" in error.reason


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "absent.jsonl", "absent.jsonl: no such file"),
        (lambda d: (d / "t.csv").write_text("a,b\n") and d / "t.csv", "unsupported file type '.csv'"),
        (lambda d: (d / "folder").mkdir() or d / "folder", "a folder; give data files"),
        (
            lambda d: write_jsonl(d / "o.jsonl", [{"foo": 1}]),
            "cannot tell the dataset format from the row keys ['foo']",
        ),
        (lambda d: (d / "bin.jsonl").write_bytes(b"\xff\xfe\x00") and d / "bin.jsonl", "not a UTF-8 text file"),
    ],
)
def test_file_level_errors_name_the_file(tmp_path, setup, message):
    path = setup(tmp_path)
    with pytest.raises(DatasetError) as info:
        load_samples([str(path)], data_cfg(on_invalid="skip"))
    assert str(path) in str(info.value) and message in str(info.value)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("datasets: []\n", "needs a non-empty list under 'datasets:'"),
        ("datasets:\n  - image_folder: x\n", "datasets[0]: missing json_path"),
        ("datasets:\n  - json_path: gone.jsonl\n", "datasets[0].json_path: 'gone.jsonl' not found"),
        ("datasets:\n  - json_path: d.jsonl\n    sampling: first:2\n", "unknown key(s) sampling"),
        ("datasets:\n  - json_path: d.jsonl\n    sampling_strategy: first:x\n", "datasets[0].sampling_strategy"),
        ("datasets:\n  - json_path: d.jsonl\n    image_folder: nowhere\n", "image_folder: folder 'nowhere' not found"),
        ("datasets:\n  - json_path: d.jsonl\n    format: csv\n", "datasets[0].format: 'csv'"),
        ("datasets: [\n", "not valid YAML"),
    ],
)
def test_data_config_errors(tmp_path, yaml_text, message):
    write_jsonl(tmp_path / "d.jsonl", [{"problem": "p", "solution": "s"}])
    (tmp_path / "cfg.yaml").write_text(yaml_text)
    with pytest.raises(DatasetError) as info:
        load_samples([str(tmp_path / "cfg.yaml")], data_cfg())
    assert str(tmp_path / "cfg.yaml") in str(info.value) and message in str(info.value)


def test_no_paths_is_an_error():
    with pytest.raises(DatasetError, match="no data paths given"):
        load_samples([], data_cfg())


def test_only_bad_json_rows_are_row_errors(tmp_path):
    path = str(write_jsonl(tmp_path / "all_bad.jsonl", ["{", "nope"]))
    result = load_samples([path], data_cfg(on_invalid="skip"))
    assert result.samples == [] and [e.line for e in result.skipped] == [1, 2]
    assert result.files[0].format == "unknown"


def test_omnirl_errors(tmp_path):
    rows = [
        {"problem": "fine", "solution": "1"},
        {"solution": "1"},
        {"problem": 3, "solution": "1"},
        {"problem": "p", "solution": "1", "task": "astrology"},
        {"problem": "<image>p", "solution": "1"},
    ]
    path = str(write_json(tmp_path / "o.json", rows))
    result = load_samples([path], data_cfg(on_invalid="skip"))
    reasons = [e.reason for e in result.skipped]
    assert len(result.samples) == 1 and len(reasons) == 4
    assert "missing field 'problem'" in reasons[0]
    assert "field 'problem' must be a string" in reasons[1]
    assert "field 'task': unknown task 'astrology'" in reasons[2]
    assert "1 <image> placeholder(s) but 0 image(s)" in reasons[3]
