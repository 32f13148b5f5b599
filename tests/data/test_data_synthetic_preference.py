"""The generated pairwise-preference task (R1-Reward demo): rows in R1-Reward's format that the loader reads,
held-out pairs that the reward-model benchmark reader reads, teacher judgements that the reward service's own
rewards score right, and judge examples whose verdicts the reward service's judge prompt carries."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from openrlhf.data import load_samples
from openrlhf.data.synthetic import COLOURS
from openrlhf.data.synthetic_preference import (
    LAZY_REASONING,
    big_shape,
    make_preference_item,
    teacher_response,
    write_preference_task,
)
from openrlhf.eval.pairwise_data import load_pairs
from remote_rm.judge import parse_verdict
from remote_rm.pairwise import preference_verdict, r1_reward_judge_prompt
from remote_rm.rewards.accuracy import preference_accuracy
from remote_rm.rewards.format import format_reward

from .helpers import data_cfg


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return write_preference_task(tmp_path_factory.mktemp("pref"), 60, 20, seed=3, lazy_share=0.0, num_judge=40)


def test_deterministic_for_a_seed(tmp_path, task):
    again = write_preference_task(tmp_path / "b", 60, 20, seed=3, lazy_share=0.0, num_judge=40)
    for key in ("train", "sft", "heldout", "judge_sft", "judge_heldout"):
        assert again[key].read_text() == task[key].read_text(), key


def test_items_have_one_true_answer_at_a_random_position():
    rng = random.Random(0)
    positions = Counter()
    for _ in range(200):
        shape = big_shape(rng, 112)
        item = make_preference_item(rng, shape)
        assert item.answers[item.preferred - 1] == f"It is {shape.colour}."
        wrong = item.answers[2 - item.preferred]
        assert wrong != item.answers[item.preferred - 1] and wrong.split()[-1].rstrip(".") in COLOURS
        assert item.question == f"What colour is the {shape.kind}?" and item.category == shape.kind
        positions[item.preferred] += 1
    assert 70 < positions[1] < 130  # both positions, about half each


def test_the_image_shows_the_true_colour(task):
    rows = json.loads(task["heldout"].read_text())
    for row in rows:
        pixels = np.asarray(Image.open(task["heldout"].parent / row["Image"]).convert("RGB")).reshape(-1, 3)
        colours = Counter(map(tuple, pixels))
        colours.pop((255, 255, 255), None)
        ((rgb, count),) = colours.most_common(1)
        true = row["Output1"] if row["Better"] == "Output1" else row["Output2"]
        assert COLOURS[true.split()[-1].rstrip(".")] == rgb
        assert count > 0.2 * len(pixels)  # one large shape


def test_train_rows_load_as_r1_reward_with_their_image(task):
    result = load_samples([str(task["train"])], data_cfg())
    assert len(result.samples) == 60 and not result.skipped
    rows = read_jsonl(task["train"])
    for sample, row in zip(result.samples, rows, strict=True):
        assert sample.task == "preference" and sample.label == row["answer"][0]
        assert len(sample.images) == 1 and Image.open(sample.images[0]).size == (112, 112)
        text = json.loads(row["message"])[0]["content"][0]["text"]
        assert text.startswith(r1_reward_judge_prompt(row["question"], "", "").split("[Response 1]")[0])


def test_careful_teacher_is_right_formatted_and_scored_by_the_reward_service(task):
    for row in read_jsonl(task["sft"]):
        response, label = row["response"], row["answer"][0]
        assert preference_accuracy(response, label) == 1.0
        assert format_reward(response, mode="strict") == 1.0
        assert preference_verdict(response) == int(label[len("<answer>")])


def test_lazy_teacher_takes_response_one(tmp_path):
    paths = write_preference_task(tmp_path, 80, 4, seed=1, lazy_share=1.0)
    rows = read_jsonl(paths["sft"])
    assert all(LAZY_REASONING in row["response"] and preference_verdict(row["response"]) == 1 for row in rows)
    accuracy = [preference_accuracy(row["response"], row["answer"][0]) for row in rows]
    assert 0.3 < sum(accuracy) / len(accuracy) < 0.7  # right only when the first answer is the true one


def test_heldout_reads_as_multimodal_rewardbench(task):
    pair_set = load_pairs([str(task["heldout"])])
    assert len(pair_set.pairs) == 20 and not pair_set.skipped
    rows = json.loads(task["heldout"].read_text())
    for pair, row in zip(pair_set.pairs, rows, strict=True):
        assert pair.benchmark == "multimodal_rewardbench" and pair.source == row["Category"]
        assert pair.responses == (row["Output1"], row["Output2"])
        assert pair.preferred == (0 if row["Better"] == "Output1" else 1)
        assert Image.open(pair.images[0]).size == (112, 112)


def test_judge_examples_carry_verdicts_in_the_reward_services_prompt(task):
    rows = read_jsonl(task["judge_sft"]) + read_jsonl(task["judge_heldout"])
    assert len(rows) == 40 + 20
    verdicts = Counter(row["solution"] for row in rows)
    assert verdicts["0"] > 10 and verdicts["1"] > 10
    for row in rows:
        prompt = row["problem"]
        assert prompt.startswith("You are a strict judge") and prompt.rstrip().endswith("Output:")
        answered = int(prompt.split("Response ")[-1][0])  # "Response N is better", as build_prompt spells it
        reasoning = prompt.split("### End of the model's reasoning")[1].split("### The model's final answer")[0]
        concluded = 1 if LAZY_REASONING in reasoning else int(reasoning.split("so ")[-1][0])
        assert row["solution"] == ("1" if answered == concluded else "0")
        assert parse_verdict(row["response"]) is (row["solution"] == "1")


def test_teacher_reasoning_compares_response_one():
    rng = random.Random(5)
    for _ in range(20):
        item = make_preference_item(rng, big_shape(rng, 112))
        text = teacher_response(item, lazy=False)
        assert text.startswith(f"<think>Response 1 says {item.answers[0].split()[-1]}")
        assert f"I see {item.colour}." in text and ("Same" in text) == (item.preferred == 1)


@pytest.mark.parametrize(
    "kwargs, message", [({"lazy_share": 1.5}, "lazy_share"), ({"image_size": 16}, "image_size >= 24")]
)
def test_bad_knobs_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_preference_task(tmp_path, 4, 2, **kwargs)
