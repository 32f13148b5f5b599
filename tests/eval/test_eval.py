"""openrlhf-eval: offline scoring of VLM-R1's published logs, metric rules, and a checkpoint over the shapes task."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from openrlhf.cli.eval import main
from openrlhf.eval.metrics import EvalRow, score_row, summarize_rows
from openrlhf.eval.offline import score_outputs_file

REPO = Path(__file__).resolve().parents[2]


def _shared_data() -> Path:
    root = Path(os.environ["SHARED_DATA_DIR"]) if os.environ.get("SHARED_DATA_DIR") else REPO.parent / "shared" / "data"
    return root / "vlm_r1_rec_outputs"


PUBLISHED = [
    ("rec_results_refcoco_val_qwen2_5vl_3b_instruct_r1_600.json", 0.902),
    ("rec_results_refgta_subsample_qwen2_5vl_3b_instruct_r1_600.json", 0.728),
    ("rec_results_refgta_subsample_qwen2_5vl_3b_instruct_sft_500.json", None),  # "see file"
]


@pytest.mark.parametrize("name,published", PUBLISHED)
def test_from_outputs_reproduces_vlm_r1_published_accuracy(name, published, tmp_path):
    path = _shared_data() / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (set SHARED_DATA_DIR to the folder holding vlm_r1_rec_outputs)")
    file_accuracy = json.loads(path.read_text())["accuracy"] / 100.0
    if published is not None:
        assert file_accuracy == pytest.approx(published)
    out = tmp_path / "report.json"
    assert main(["--from-outputs", str(path), "--box", "last", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["rows"] == 500
    assert abs(report["accuracy"] - file_accuracy) <= 1 / 500 + 1e-9  # within one sample
    assert report["disagreements_with_published_correct"] <= 1
    assert 0.0 < report["tasks"]["rec"]["mean_iou"] < 1.0
    assert report["tasks"]["rec"]["mean_iou"] < report["accuracy"] + 0.2


def test_first_box_rule_differs_where_answers_hold_two_boxes():
    path = _shared_data() / PUBLISHED[0][0]
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    last, first = score_outputs_file(path, box="last"), score_outputs_file(path, box="first")
    changed = [a for a, b in zip(last["per_row"], first["per_row"], strict=True) if a["iou"] != b["iou"]]
    assert changed, "the refcoco log has answers with several boxes: the first-box rule must change some IoUs"


def test_rec_rows_rescale_from_input_to_image_size_and_threshold_is_strict():
    row = EvalRow("rec", "q", [100, 100, 200, 200], "<answer>[50, 50, 100, 100]</answer>")
    assert score_row(row)["iou"] == 0.0  # unscaled: no overlap
    scaled = EvalRow(
        "rec",
        "q",
        [100, 100, 200, 200],
        "<answer>[50, 50, 100, 100]</answer>",
        image_size=[400, 400],
        input_size=[200, 200],
    )
    assert score_row(scaled) == {"iou": 1.0, "correct": 1.0}
    half = EvalRow("rec", "q", [0, 0, 100, 100], "[0, 0, 100, 50] then [0, 0, 100, 100]")
    assert score_row(half, box="first") == {"iou": 0.5, "correct": 0.0}  # IoU = 0.5 is not > 0.5
    assert score_row(half, box="last")["correct"] == 1.0


def test_counting_choice_exact_and_summary():
    rows = [
        EvalRow("counting", "q", "3", "<think>x</think><answer>3</answer>"),
        EvalRow("counting", "q", "2", "<answer>3</answer>"),
        EvalRow("choice", "q", "B", "<answer>(B) red</answer>"),
        EvalRow("exact", "q", "red", "<answer>Red</answer>"),
    ]
    for row in rows:
        score_row(row)
    summary = summarize_rows(rows)
    assert summary["tasks"]["counting"] == {"rows": 2, "accuracy": 0.5}
    assert summary["tasks"]["choice"]["accuracy"] == 1.0
    assert summary["accuracy"] == 0.75
    with pytest.raises(ValueError, match=r"here:1: task 'ovd' has no evaluation metric"):
        score_row(EvalRow("ovd", "q", "x", "y", where="here:1"))


def test_bad_outputs_files_name_file_row_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"results": [{"question": "q", "ground_truth": [0, 0, 1, 1], "model_output": "x"}, {}]}))
    assert main(["--from-outputs", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: results[1]: missing key(s)" in err and "model_output" in err
    broken = tmp_path / "broken.json"
    broken.write_text('{"results": [\n  {"question": }\n]}')
    assert main(["--from-outputs", str(broken)]) == 1
    assert f"{broken}:2: not valid JSON" in capsys.readouterr().err
    assert main(["--from-outputs", str(tmp_path / "missing.json")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["--from-outputs", str(bad), "--box", "middle"]) == 2


def test_checkpoint_eval_over_the_shapes_task_round_trips_through_from_outputs(tiny_vlm_path, tmp_path, capsys):
    """The tiny VLM answers the held-out shapes questions; the report covers every task and re-scores offline."""
    from openrlhf.data.synthetic import write_shapes_task

    data = write_shapes_task(tmp_path / "shapes", 4, 8, seed=3)
    out = tmp_path / "eval"
    argv = [
        "--actor.model_name_or_path", str(tiny_vlm_path),
        "--data.eval_paths", f"[{data['heldout']}]",
        "--data.max_pixels", "12544",
        "--data.task_suffix", "r1",
        "--rollout.backend", "hf",
        "--rollout.max_new_tokens", "8",
        "--train.output_dir", str(out),
        "--box", "first",
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((out / "eval_report.json").read_text())
    assert report["rows"] == 8 and report["box"] == "first"
    assert set(report["tasks"]) == {"counting", "exact", "choice", "rec"}
    assert "mean_iou" in report["tasks"]["rec"]
    saved = json.loads((out / "eval_outputs.json").read_text())["results"]
    rec_rows = [r for r in saved if r["task"] == "rec"]
    assert all(r["image_size"] == [56, 56] and r["input_size"] == [56, 56] for r in rec_rows)
    again = score_outputs_file(out / "eval_outputs.json", box="first")
    assert again["accuracy"] == report["accuracy"]
    assert again["tasks"] == report["tasks"]
    assert report["temperature"] == 0.0 and report["n_samples_per_prompt"] == 1  # greedy by default

    # sampled as training's evaluation is: n answers per prompt, accuracy over all, pass@n over prompts
    assert main([*argv, "--eval.n_samples_per_prompt", "3", "--train.output_dir", str(tmp_path / "sampled")]) == 0
    report = json.loads((tmp_path / "sampled" / "eval_report.json").read_text())
    saved = json.loads((tmp_path / "sampled" / "eval_outputs.json").read_text())["results"]
    assert report["rows"] == len(saved) == 24 and report["temperature"] == 0.6  # OpenRLHF's sampled default
    correct = [r["correct"] for r in saved]
    assert report["accuracy"] == pytest.approx(sum(correct) / 24)
    assert report["pass3"] == pytest.approx(sum(any(correct[i : i + 3]) for i in range(0, 24, 3)) / 8)
    assert [r["question"] for r in saved[:3]] == [saved[0]["question"]] * 3


def test_checkpoint_eval_errors_are_one_line(tmp_path, capsys):
    assert main(["--actor.model_name_or_path", str(tmp_path / "nope"), "--data.eval_paths", "[x.jsonl]"]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert main(["--box", "middle"]) == 2
