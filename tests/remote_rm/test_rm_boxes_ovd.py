"""Box parsing, IoU, the REC reward on real VLM-R1 outputs, and the OVD mAP reward."""

from __future__ import annotations

import json

import pytest

from remote_rm.protocol import Label
from remote_rm.rewards.boxes import box_iou, gt_box, last_box, parse_boxes, rec_iou, rescale_box
from remote_rm.rewards.ovd import coco_map, ovd_map, parse_detections


def test_parse_boxes_in_every_form():
    assert parse_boxes('{"bbox_2d": [10, 20, 30, 40], "label": "dog"}') == [(10, 20, 30, 40)]
    assert parse_boxes("[ 1.5, 2 ,3.25,4e1 ]") == [(1.5, 2, 3.25, 40.0)]
    text = '```json\n[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [5, 6, 7, 8]}]\n```'
    assert parse_boxes(text) == [(1, 2, 3, 4), (5, 6, 7, 8)]
    assert last_box(text) == (5, 6, 7, 8)
    assert parse_boxes("[1, 2, 3]") == [] and parse_boxes("[a, b, c, d]") == [] and last_box("none") is None
    assert gt_box([1, 2, 3, 4]) == (1, 2, 3, 4) and gt_box("[1,2,3,4]") == (1, 2, 3, 4) and gt_box("x") is None


def test_iou_formula():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((10, 10, 0, 0), (0, 0, 10, 10)) == 0.0  # degenerate: zero area
    assert box_iou((0, 0, 1e308, 1e308), (0, 0, 1e308, 1e308)) in (0.0, 1.0)  # overflow stays finite


def test_rec_reward_first_last_rescale_threshold():
    label = Label([0, 0, 100, 100])
    two = "<think>r</think><answer>[0, 0, 100, 100] then [50, 0, 150, 100]</answer>"
    assert rec_iou(two, label) == 1.0
    assert rec_iou(two, label, box="last") == pytest.approx(50 / 150)
    assert rec_iou(two, label, box="last", threshold=0.5) == 0.0
    # The model saw a 50x50 input of a 100x100 image: its [0,0,50,50] is the whole image.
    scaled = Label([0, 0, 100, 100], "rec", {"input_size": (50, 50), "image_size": (100, 100)})
    assert rec_iou("<answer>[0, 0, 50, 50]</answer>", scaled) == 1.0
    assert rescale_box((10, 10, 20, 20), (50, 100), (100, 100)) == (20, 10, 40, 20)
    assert rec_iou("<answer>the dog on the left</answer>", label) == 0.0
    assert rec_iou("<answer>[0, 0, 100, 100]</answer>", Label("not a box")) == 0.0
    assert rec_iou("[0, 0, 100, 100] but no tags", label) == 1.0
    assert rec_iou("[0, 0, 100, 100] but no tags", label, require_tag=True) == 0.0


# Files whose published accuracy (the file's "accuracy", VLM-R1's evaluation: last box, IoU > 0.5) we reproduce.
PUBLISHED = (
    "rec_results_refcoco_val_qwen2_5vl_3b_instruct_r1_600.json",  # 90.2
    "rec_results_refgta_subsample_qwen2_5vl_3b_instruct_r1_600.json",  # 72.8
    "rec_results_refgta_subsample_qwen2_5vl_3b_instruct_sft_500.json",  # 36.8
)


@pytest.mark.parametrize("name", PUBLISHED)
def test_real_vlm_r1_outputs_reproduce_published_accuracy(rec_outputs_dir, name):
    data = json.loads((rec_outputs_dir / name).read_text())
    rows = data["results"]
    correct = sum(rec_iou(r["model_output"], Label(r["ground_truth"]), box="last", threshold=0.5) for r in rows)
    published = data["accuracy"] / 100 * len(rows)  # the file's accuracy is a percentage
    assert abs(correct - published) <= 1, f"{name}: {correct} correct, published {published:.1f}"


def test_real_baseline_outputs_score_from_model_output(rec_outputs_dir):
    # The baseline file's extracted_answer was rescaled wrongly; the model's own boxes are mostly right.
    data = json.loads((rec_outputs_dir / "rec_results_refcoco_val_qwen2_5vl_3b_instruct_baseline.json").read_text())
    rows = data["results"]
    ious = [rec_iou(r["model_output"], Label(r["ground_truth"]), box="last") for r in rows]
    wrong = [box_iou(r["extracted_answer"], r["ground_truth"]) for r in rows]
    assert sum(i > 0.5 for i in ious) / len(rows) > 0.8
    assert sum(i > 0.5 for i in wrong) / len(rows) < 0.2


def dets(*items):
    return [{"bbox_2d": list(box), "label": name} for box, name in items]


def test_parse_detections_fenced_bare_and_broken():
    fenced = "```json\n" + json.dumps(dets(((1, 2, 3, 4), "Dog"))) + "\n```"
    assert parse_detections(fenced) == [((1, 2, 3, 4), "dog")]
    assert parse_detections(json.dumps(dets(((1, 2, 3, 4), "cat")))) == [((1, 2, 3, 4), "cat")]
    broken = '[{"bbox_2d": [1, 2, 3, 4], "label": "cat"}, {"bbox_2d": [5, 6, 7, 8], "label": "dog"'
    assert parse_detections(broken) == [((1, 2, 3, 4), "cat")]
    assert parse_detections('[{"bbox_2d": [1, 2], "label": "cat"}, {"label": 3}]') == []


def test_coco_map_by_hand():
    gt = [((0, 0, 100, 100), "dog")]
    assert coco_map(gt, gt) == pytest.approx(1.0)
    # IoU 0.72: a hit at thresholds .50 .. .70 (5 of 10), a miss above: mAP 0.5.
    pred = [((0, 0, 100, 72), "dog")]
    assert box_iou(pred[0][0], gt[0][0]) == pytest.approx(0.72)
    assert coco_map(pred, gt) == pytest.approx(0.5)
    assert coco_map([((0, 0, 100, 100), "cat")], gt) == 0.0  # right box, wrong label
    assert coco_map([], gt) == 0.0 and coco_map([], []) == 1.0


def test_ovd_reward_penalises_box_spam():
    truth = dets(((0, 0, 100, 100), "dog"), ((200, 200, 300, 300), "cat"))
    label = Label(truth, "ovd")
    perfect = "<think>r</think><answer>" + json.dumps(truth) + "</answer>"
    assert ovd_map(perfect, label) == pytest.approx(1.0)
    spam = truth + dets(*[((x, x, x + 10, x + 10), "dog") for x in range(400, 480, 10)])
    spammed = ovd_map("<answer>" + json.dumps(spam) + "</answer>", label)
    assert spammed <= 2 / len(spam) + 1e-9
    assert ovd_map("<answer>no boxes</answer>", label) == 0.0
    assert ovd_map("<answer>[]</answer>", Label([], "ovd")) == 1.0
    assert ovd_map(perfect, Label(json.dumps(truth), "ovd")) == pytest.approx(1.0)
