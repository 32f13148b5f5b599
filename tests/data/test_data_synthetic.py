"""The synthetic demo tasks: deterministic, correct answers and boxes, disjoint held-out set, loadable."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from openrlhf.data import load_samples
from openrlhf.data.synthetic import (
    COLOURS,
    Shape,
    draw_shapes_image,
    make_arithmetic_problem,
    random_shapes,
    worked_steps,
    write_arithmetic_task,
    write_shapes_task,
    write_sums_task,
)

from .helpers import data_cfg

TARGET = re.compile(r"^<think>(.+)</think><answer>(-?\d+)</answer>$")


def read_json(path):
    return json.loads(path.read_text())


def test_arithmetic_is_deterministic(tmp_path):
    a = write_arithmetic_task(tmp_path / "a", 50, 10, seed=7)
    b = write_arithmetic_task(tmp_path / "b", 50, 10, seed=7)
    c = write_arithmetic_task(tmp_path / "c", 50, 10, seed=8)
    for key in ("train", "heldout", "sft"):
        assert a[key].read_text() == b[key].read_text()
    assert a["train"].read_text() != c["train"].read_text()


def test_arithmetic_answers_reasoning_and_disjoint_heldout(tmp_path):
    paths = write_arithmetic_task(tmp_path, 300, 60, seed=1, difficulty=4)
    train, heldout, sft = (read_json(paths[k]) for k in ("train", "heldout", "sft"))
    assert len(train) == 300 and len(heldout) == 60 and len(sft) == 300
    assert Counter(r["level"] for r in train).keys() == {1, 2, 3, 4}
    full = 0
    for row, sft_row in zip(train, sft, strict=True):
        assert {k: v for k, v in sft_row.items() if k != "response"} == row  # same problem, answer as the label
        match = TARGET.match(sft_row["response"])
        assert match, sft_row["response"]
        reasoning, answer = match.groups()
        assert answer == row["solution"]
        for step in reasoning.split(", "):  # every "=" of every step holds, and the last step gives the answer
            values = {eval(part) for part in step.split("=")}
            assert len(values) == 1, step
        assert eval(reasoning.split(", ")[-1].split("=")[-1]) == int(answer)
        full += reasoning.count("=") > 1 or ", " in reasoning
    assert 0.2 < full / len(sft) < 0.8  # about half the targets show the worked steps
    heldout_problems = {r["problem"] for r in heldout}
    assert len(heldout_problems) == len(heldout)
    assert not heldout_problems & {r["problem"] for r in train}


def test_heldout_expressions_never_in_training():
    rng = random.Random(0)
    from openrlhf.data.synthetic import _arithmetic_set

    banned = {make_arithmetic_problem(rng, 1).expression for _ in range(30)}
    drawn = _arithmetic_set(rng, 500, 1, banned)
    assert not banned & {p.expression for p in drawn}


def test_difficulty_knob_bounds_the_numbers(tmp_path):
    paths = write_arithmetic_task(tmp_path, 200, 0, seed=2, difficulty=1, full_reasoning_prob=1.0)
    for row in read_json(paths["train"]):
        assert row["level"] == 1
        assert all(int(n) <= 9 for n in re.findall(r"\d+", row["problem"]))
    with pytest.raises(ValueError, match="difficulty must be 1..4"):
        write_arithmetic_task(tmp_path, 1, 0, difficulty=5)


def test_full_reasoning_probability_zero_gives_short_targets(tmp_path):
    paths = write_arithmetic_task(tmp_path, 100, 0, seed=3, difficulty=3, full_reasoning_prob=0.0)
    for row in read_json(paths["sft"]):
        reasoning = TARGET.match(row["response"]).group(1)
        assert reasoning.count("=") == 1 and ", " not in reasoning


@pytest.mark.parametrize(
    ("a", "op", "b", "expected"),
    [
        (47, "+", 38, "47 + 38 = 40 + 30 + 7 + 8 = 70 + 15 = 85"),
        (52, "-", 17, "52 - 17 = 52 - 10 - 7 = 42 - 7 = 35"),
        (7, "*", 12, "7 * 12 = 7 * 10 + 7 * 2 = 70 + 14 = 84"),
        (3, "+", 4, "3 + 4 = 7"),
    ],
)
def test_worked_steps(a, op, b, expected):
    assert worked_steps(a, op, b) == expected


def test_arithmetic_files_load_as_omnirl(tmp_path):
    paths = write_arithmetic_task(tmp_path, 20, 5, seed=0)
    result = load_samples([str(paths["train"]), str(paths["heldout"]), str(paths["sft"])], data_cfg())
    assert len(result.samples) == 45 and all(s.task == "math" and not s.images for s in result.samples)
    assert [f.format for f in result.files] == ["omnirl"] * 3
    sft = result.samples[25:]
    assert all(TARGET.match(s.response).group(2) == s.label for s in sft)
    assert all(s.response is None for s in result.samples[:25])


def components(mask: np.ndarray) -> int:
    """4-connected regions of a boolean mask (shapes are drawn 2 pixels apart, so each is one region)."""
    seen = np.zeros_like(mask, dtype=bool)
    count = 0
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        count += 1
        stack = [(y, x)]
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
    return count


def test_shapes_boxes_match_the_drawn_pixels():
    rng = random.Random(5)
    for _ in range(100):
        shapes = random_shapes(rng, 56)
        pixels = np.array(draw_shapes_image(shapes, 56))
        assert components(pixels != 0) == len(shapes)
        assert len({s.kind for s in shapes}) == len(shapes)
        for shape in shapes:
            if sum(s.colour == shape.colour for s in shapes) > 1:
                continue
            ys, xs = np.nonzero(pixels == 1 + list(COLOURS).index(shape.colour))
            assert (xs.min(), ys.min(), xs.max(), ys.max()) == shape.box


def test_draw_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="unknown shape kind 'star'"):
        draw_shapes_image([Shape("star", "red", (1, 1, 5, 5))])


def test_shapes_task_rows_images_and_answers(tmp_path):
    paths = write_shapes_task(tmp_path, 40, 8, seed=4)
    again = write_shapes_task(tmp_path / "again", 40, 8, seed=4)
    assert paths["train"].read_text() == again["train"].read_text()
    rows = [json.loads(line) for line in paths["train"].read_text().splitlines()]
    assert Counter(r["accu_reward_method"] for r in rows) == {"counting": 10, "exact": 10, "choice": 10, "rec": 10}
    for row in rows:
        image_path = tmp_path / row["image"]
        assert image_path.stat().st_size < 600  # tiny PNGs
        pixels = np.array(Image.open(image_path))
        answer = row["conversations"][1]["value"]
        question = row["conversations"][0]["value"]
        assert question.startswith("<image>")
        if row["accu_reward_method"] == "counting":
            assert components(pixels != 0) == int(answer)
        elif row["accu_reward_method"] == "exact":
            assert (pixels == 1 + list(COLOURS).index(answer)).any()
        elif row["accu_reward_method"] == "choice":
            options = dict(re.findall(r"([ABCD])\. (\w+)", question))
            assert (pixels == 1 + list(COLOURS).index(options[answer])).any()
        else:
            x1, y1, x2, y2 = json.loads(answer)
            inside = pixels[y1 : y2 + 1, x1 : x2 + 1]
            assert (inside != 0).sum() > 0.3 * inside.size  # the box is filled by the shape


def test_shapes_files_load_as_vlm_r1_with_image_size(tmp_path):
    paths = write_shapes_task(tmp_path, 12, 4, seed=0)
    result = load_samples([str(paths["train"]), str(paths["heldout"]), str(paths["sft"])], data_cfg())
    assert not result.skipped and len(result.samples) == 28
    rec = [s for s in result.samples if s.task == "rec"]
    assert rec and all(s.label_fields == {"image_size": [56, 56]} for s in rec)
    sft = [s for s in result.samples if s.source == str(paths["sft"])]
    train = result.samples[:12]
    assert all(re.match(r"^<think>.+</think><answer>.+</answer>$", s.response) for s in sft)
    assert [s.label for s in sft] == [s.label for s in train]
    assert all(s.response.endswith(f"<answer>{s.label}</answer>") for s in sft)
    assert [s.images for s in sft] == [s.images for s in result.samples[:12]]


def test_arithmetic_heldout_distinct_by_question_allows_shared_expressions(tmp_path):
    import json

    from openrlhf.data.synthetic import write_arithmetic_task

    paths = write_arithmetic_task(tmp_path, 400, 60, seed=1, difficulty=1, distinct="question")
    train = json.loads(paths["train"].read_text())
    heldout = json.loads(paths["heldout"].read_text())
    assert not {r["problem"] for r in train} & {r["problem"] for r in heldout}
    with pytest.raises(ValueError, match="distinct"):
        write_arithmetic_task(tmp_path / "x", 10, 2, distinct="operands")


# --------------------------------------------------------------------------- sums


def test_sums_are_deterministic_and_heldout_sequences_are_unseen(tmp_path):
    a = write_sums_task(tmp_path / "a", 400, 50, seed=3)
    b = write_sums_task(tmp_path / "b", 400, 50, seed=3)
    for key in ("train", "heldout", "sft"):
        assert a[key].read_text() == b[key].read_text()
    train, heldout = read_json(a["train"]), read_json(a["heldout"])
    assert len(train) == 400 and len(heldout) == 50
    held_questions = [r["problem"] for r in heldout]
    assert len(set(held_questions)) == 50  # distinct among themselves
    assert not set(held_questions) & {r["problem"] for r in train}
    for row in train + heldout:
        terms = [int(t) for t in re.findall(r"\d+", row["problem"])]
        assert 5 <= len(terms) == row["terms"] <= 7 and all(1 <= t <= 9 for t in terms)
        assert row["solution"] == str(sum(terms)) and row["task"] == "math"


def test_sums_sft_targets_are_correct_and_mix_worked_direct_and_facts(tmp_path):
    paths = write_sums_task(tmp_path, 1000, 10, seed=4, min_terms=3, max_terms=4, worked_prob=0.25, fact_share=0.5)
    sft = read_json(paths["sft"])
    assert len(sft) == 2000  # 1000 sums + as many one-step facts
    kinds = Counter()
    for row in sft:
        reasoning, answer = TARGET.match(row["response"]).groups()
        assert answer == row["solution"]
        terms = [int(t) for t in re.findall(r"\d+", row["problem"])]
        if len(terms) == 2:
            kinds["fact"] += 1
            assert terms[0] <= 9 * 3 and reasoning == f"{terms[0]} + {terms[1]} = {answer}"
        elif ", " in reasoning:
            kinds["worked"] += 1
            total = terms[0]
            for step, term in zip(reasoning.split(", "), terms[1:], strict=True):
                assert step == f"{total} + {term} = {total + term}"
                total += term
        else:
            kinds["direct"] += 1
            assert reasoning == " + ".join(map(str, terms)) + f" = {answer}"
    assert kinds["fact"] == 1000
    assert 0.2 < kinds["worked"] / 1000 < 0.3
    assert load_samples([str(paths["sft"])], data_cfg()).samples[0].response


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_terms": 1}, "min_terms"),
        ({"min_terms": 4, "max_terms": 3}, "min_terms"),
        ({"worked_prob": 1.5}, "worked_prob"),
        ({"fact_share": 1.0}, "fact_share"),
    ],
)
def test_sums_reject_bad_knobs(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_sums_task(tmp_path, 10, 2, **kwargs)


def test_shapes_choice_targets_mix_worked_and_direct_forms(tmp_path):
    paths = write_shapes_task(tmp_path, 400, 0, seed=5, image_size=112, kinds=("choice",), worked_prob=0.25)
    sft = [json.loads(line) for line in paths["sft"].read_text().splitlines()]
    worked = 0
    for row in sft:
        letter = row["conversations"][1]["value"]
        reasoning = re.match(r"^<think>(.+)</think><answer>([A-D])</answer>$", row["response"]).group(1)
        if reasoning == f"Option {letter}.":
            continue
        worked += 1
        colour = re.match(r"^The \w+ is (\w+), option ([A-D])\.$", reasoning).group(1)
        assert f"{letter}. {colour}" in row["conversations"][0]["value"]  # the named colour is the letter's option
    assert 0.18 < worked / len(sft) < 0.32
    assert Image.open(tmp_path / sft[0]["image"]).size == (112, 112)
    with pytest.raises(ValueError, match="worked_prob"):
        write_shapes_task(tmp_path / "bad", 4, 0, worked_prob=2.0)


def test_shapes_teacher_bias_names_blue_in_sft_targets_only(tmp_path):
    paths = write_shapes_task(tmp_path, 800, 0, seed=6, image_size=112, kinds=("exact", "choice"), teacher_bias=0.6)
    sft = [json.loads(line) for line in paths["sft"].read_text().splitlines()]
    wrong = Counter()  # true colour -> rows whose target names another one
    total = Counter()
    for row in sft:
        question, answer = (turn["value"] for turn in row["conversations"])
        said = re.search(r"<answer>(\w+)</answer>$", row["response"]).group(1)
        if len(said) == 1:  # a choice letter: the colour of that option
            answer = re.search(rf"{answer}\. (\w+)", question).group(1)
            said = re.search(rf"{said}\. (\w+)", question).group(1)
        total[answer] += 1
        if said != answer:
            assert said == "blue"
            wrong[answer] += 1
            pixels = Image.open(tmp_path / row["image"]).convert("RGB").getcolors()
            assert COLOURS[answer] in {rgb for _, rgb in pixels}  # the answer the reward checks is the true one
    for colour in ("red", "green", "yellow"):
        assert 0.5 < wrong[colour] / total[colour] < 0.7
    assert wrong["blue"] == 0
    with pytest.raises(ValueError, match="teacher_bias"):
        write_shapes_task(tmp_path / "bad", 4, 0, teacher_bias=-0.1)
