"""openrlhf-data inspect / synth: per-file report, every bad row as FILE:LINE, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from openrlhf.cli.data import main

from .helpers import EXAMPLES, PLANTED, REPO

GOOD = ["omnirl_mixed.json", "data_config.yaml", "r1_reward.jsonl", "hf_chat.jsonl", "hf_prompts.parquet"]


def test_inspect_good_files(capsys):
    assert main(["inspect", *(str(EXAMPLES / name) for name in GOOD)]) == 0
    out = capsys.readouterr().out
    omnirl = out.split(f"== {EXAMPLES / 'omnirl_mixed.json'} (format: omnirl)")[1].split("==")[0]
    assert "rows: 6  valid: 6  invalid: 0" in omnirl
    assert "text-only rows: 3  image rows: 3" in omnirl
    assert "images per row: 0 x3, 1 x2, 2 x1" in omnirl
    assert "tasks: (none) x1, counting x1, exact x2, math x2" in omnirl
    assert "label examples: '12', '2', '<answer> 27 </answer>'" in omnirl
    assert f"== {EXAMPLES / 'vlm_r1_extra.jsonl'} (format: vlm_r1)\n  rows: 2" in out  # first:2 from the YAML
    assert "tasks: preference x2" in out
    assert out.rstrip().endswith("== total: 21 rows, 21 valid, 0 invalid, 0 unreadable file(s): OK")


def test_inspect_names_every_planted_bad_row(capsys):
    paths = [str(EXAMPLES / name) for name in sorted(PLANTED)]
    assert main(["inspect", *paths]) == 1
    out = capsys.readouterr().out
    bad_lines = [line for line in out.splitlines() if not line.startswith(("  ", "=="))]
    assert len(bad_lines) == len(PLANTED)
    for path, name in zip(paths, sorted(PLANTED), strict=True):
        line, reason = PLANTED[name]
        assert any(b.startswith(f"{path}:{line}: ") and reason in b for b in bad_lines), name
    assert "INVALID" in out.splitlines()[-1]


def test_inspect_with_image_root_and_keys(capsys):
    rec = str(EXAMPLES / "vlm_r1_rec.jsonl")
    assert main(["inspect", rec]) == 1  # its images live in images/
    assert f"{rec}:1: image 'red_circle.png' not found" in capsys.readouterr().out
    assert main(["inspect", rec, "--image-root", str(EXAMPLES / "images")]) == 0
    custom = str(EXAMPLES / "hf_custom_keys.jsonl")
    assert main(["inspect", custom]) == 1
    assert "cannot tell the dataset format" in capsys.readouterr().out
    assert main(["inspect", custom, "--input-key", "query", "--label-key", "response"]) == 0
    assert main(["inspect", str(EXAMPLES / "omnirl_mixed.json"), "--format", "hf"]) == 1  # no 'prompt' column


def test_inspect_unreadable_file_is_invalid(capsys, tmp_path):
    assert main(["inspect", str(tmp_path / "none.jsonl")]) == 1
    assert f"{tmp_path / 'none.jsonl'}: no such file" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["inspect"],
        ["inspect", "x.jsonl", "--format", "csv"],
        ["inspect", "x.jsonl", "--image-root", "/no/such/folder"],
        ["synth", "--task", "chess", "--out", "x"],
        ["synth", "--task", "arithmetic", "--out", "x", "--difficulty", "9"],
        ["synth", "--task", "sums", "--out", "x", "--min-terms", "6", "--max-terms", "3"],
    ],
)
def test_usage_errors_exit_2(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "inspect" in capsys.readouterr().out


@pytest.mark.parametrize("task, rows", [("arithmetic", 28), ("shapes", 28), ("sums", 36)])  # sums: + 8 facts
def test_synth_then_inspect(task, rows, tmp_path, capsys):
    out = tmp_path / task
    assert main(["synth", "--task", task, "--out", str(out), "--num-train", "12", "--num-heldout", "4"]) == 0
    printed = capsys.readouterr().out
    assert f"train: {out}" in printed
    files = sorted(p for p in out.iterdir() if p.suffix in (".json", ".jsonl"))
    assert len(files) == 3
    assert main(["inspect", *map(str, files)]) == 0
    assert f"== total: {rows} rows, {rows} valid, 0 invalid" in capsys.readouterr().out


def test_module_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "openrlhf.cli.data", "inspect", str(EXAMPLES / "bad" / "not_json.jsonl")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert f"{EXAMPLES / 'bad' / 'not_json.jsonl'}:2: not valid JSON" in done.stdout
    assert done.stderr == ""


def test_synth_bad_knobs_are_named_and_defaults_come_from_the_config(tmp_path, capsys):
    assert main(["synth", "--task", "arithmetic", "--out", str(tmp_path / "a"), "--difficulty", "9"]) == 2
    assert "--difficulty 9: Input should be less than or equal to 4" in capsys.readouterr().err
    assert main(["synth", "--task", "sums", "--out", str(tmp_path / "s"), "--min-terms", "6", "--max-terms", "3"]) == 2
    assert "demo.min_terms (6) must not exceed demo.max_terms (3)" in capsys.readouterr().err
    assert main(["synth", "--task", "sums", "--out", str(tmp_path / "d"), "--num-heldout", "3"]) == 0
    from openrlhf.config import DemoConfig

    train = json.loads((tmp_path / "d" / "train.json").read_text())
    assert len(train) == DemoConfig().num_train
    assert {r["terms"] for r in train} <= set(range(DemoConfig().min_terms, DemoConfig().max_terms + 1))


def test_synth_shapes_teacher_bias_reaches_the_sft_targets(tmp_path, capsys):
    assert main(["synth", "--task", "shapes", "--out", str(tmp_path / "x"), "--teacher-bias", "1.5"]) == 2
    assert "--teacher-bias 1.5: Input should be less than or equal to 1" in capsys.readouterr().err
    args = ["--num-train", "40", "--num-heldout", "2", "--image-size", "112"]
    assert main(["synth", "--task", "shapes", "--out", str(tmp_path / "b"), *args, "--teacher-bias", "1"]) == 0
    sft = [json.loads(line) for line in (tmp_path / "b" / "sft.jsonl").read_text().splitlines()]
    named = [
        re.search(r"<answer>(\w+)</answer>", r["response"]).group(1) for r in sft if r["accu_reward_method"] == "exact"
    ]
    assert named and set(named) == {"blue"}  # a fully biased teacher names blue for every shape
