"""A generated pairwise-preference task for training a generative reward model, as R1-Reward does (demo task
``preference``, configs/demo_reward_model.yaml).

Each item is an image of one large coloured shape (:func:`openrlhf.data.synthetic.draw_shapes_image`), the
question "What colour is the <shape>?" and two short answers ("It is red." / "It is blue."), exactly one true.
The preferred answer's position (1 or 2) is drawn at random, so a judge that always says 1 is right half the
time and never position-consistent. (With up to three small shapes and counting questions the tiny VLM's warm
start stayed at chance: docs/benchmarks.md, R1-Reward demo.)

Files written to ``out_dir`` (image paths relative to it):

- ``train.jsonl``: R1-Reward rows (``{"message", "question", "answer": ["<answer>N</answer>"]}``) whose user
  turn is R1-Reward's comparison prompt (:func:`remote_rm.pairwise.r1_reward_judge_prompt`) with one image part.
- ``sft.jsonl``: the same rows with a ``response``, the reasoning of a simulated teacher. A careful teacher
  copies what Response 1 says, looks and compares: ``<think>Response 1 says blue. I see red. Different,
  so 2.</think><answer>2</answer>``. With probability
  ``lazy_share`` the teacher does not look and takes the first answer
  (``<think>Response 1 looks right.</think><answer>1</answer>``): the position bias a warm start copies and
  the preference reward (accuracy checks the true answer) removes.
- ``heldout.json``: held-out pairs in Multimodal RewardBench's released layout (``ID``, ``Text``, ``Image``,
  ``Output1``, ``Output2``, ``Better``, ``Category`` = the shape's kind), read by
  ``openrlhf-eval --task reward_model`` (:mod:`openrlhf.eval.pairwise_data`).
- ``judge_sft.jsonl`` / ``judge_heldout.jsonl``: OmniRL rows for the consistency judge (a text model served by
  ``openrlhf-serve``): the problem is the reward service's own judge prompt
  (:func:`remote_rm.judge.build_prompt`) around a teacher-style response whose answer was kept or flipped, the
  solution and response the verdict, ``1`` when the response the reasoning concludes with is the answer, else ``0``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from openrlhf.data.synthetic import COLOURS, SHAPE_KINDS, Shape, draw_shapes_image, sft_target
from remote_rm.judge import build_prompt as judge_prompt
from remote_rm.pairwise import r1_reward_judge_prompt

LAZY_REASONING = "Response 1 looks right."


@dataclass(frozen=True)
class PreferenceItem:
    question: str
    answers: tuple[str, str]  # in shown order: Response 1, Response 2
    preferred: int  # 1 or 2
    category: str  # the shape's kind
    colour: str  # the true colour
    said_first: str  # the colour Response 1 says


def big_shape(rng: random.Random, size: int) -> Shape:
    """One shape of random kind and colour whose side is 60-90 % of the image, at a random place."""
    side = rng.randint(size * 3 // 5, size * 9 // 10)
    x1, y1 = rng.randint(0, size - side - 1), rng.randint(0, size - side - 1)
    return Shape(rng.choice(SHAPE_KINDS), rng.choice(list(COLOURS)), (x1, y1, x1 + side, y1 + side))


def make_preference_item(rng: random.Random, shape: Shape) -> PreferenceItem:
    """The colour question about ``shape`` with a true and a false answer, the true one at a random position."""
    wrong = rng.choice([c for c in COLOURS if c != shape.colour])
    preferred = rng.choice((1, 2))
    first, second = (shape.colour, wrong) if preferred == 1 else (wrong, shape.colour)
    answers = (f"It is {first}.", f"It is {second}.")
    return PreferenceItem(f"What colour is the {shape.kind}?", answers, preferred, shape.kind, shape.colour, first)


def teacher_response(item: PreferenceItem, lazy: bool) -> str:
    """The simulated teacher's judgement. Careful: read Response 1, look, compare, pick
    (``<think>Response 1 says blue. I see red. Different, so 2.</think><answer>2</answer>``): a tiny model
    learns to copy a word and compare two words, not to look a word up among the responses. Lazy: take
    Response 1 without looking."""
    if lazy:
        return sft_target(LAZY_REASONING, 1)
    verdict = "Same" if item.preferred == 1 else "Different"
    reasoning = f"Response 1 says {item.said_first}. I see {item.colour}. {verdict}, so {item.preferred}."
    return sft_target(reasoning, item.preferred)


def r1_reward_row(item: PreferenceItem, image: str) -> dict:
    """R1-Reward's training row: the comparison prompt with one image part, the preferred position as label."""
    text = r1_reward_judge_prompt(item.question, *item.answers)
    message = [{"role": "user", "content": [{"type": "text", "text": text}, {"type": "image", "image": image}]}]
    return {"message": json.dumps(message), "question": item.question, "answer": [f"<answer>{item.preferred}</answer>"]}


def multimodal_rewardbench_row(item: PreferenceItem, image: str, ident: str) -> dict:
    """The pair in Multimodal RewardBench's layout (``Better`` names the preferred output)."""
    return {
        "ID": ident,
        "Text": item.question,
        "Image": image,
        "Output1": item.answers[0],
        "Output2": item.answers[1],
        "Better": f"Output{item.preferred}",
        "Category": item.category,
    }


def judge_row(rng: random.Random, item: PreferenceItem) -> dict:
    """A consistency-judge example: a teacher-style response whose answer is kept or flipped (half each), in
    the reward service's judge prompt; verdict 1 when the reasoning concludes with the answer's response."""
    lazy = rng.random() < 0.3
    reasoning_pick = 1 if lazy else item.preferred
    response = teacher_response(item, lazy)
    answer = reasoning_pick if rng.random() < 0.5 else 3 - reasoning_pick
    response = response.replace(f"<answer>{reasoning_pick}</answer>", f"<answer>{answer}</answer>")
    verdict = "1" if answer == reasoning_pick else "0"
    prompt = judge_prompt(response, nonce=f"MODEL_TEXT_{rng.getrandbits(48):012x}")
    return {"problem": prompt, "solution": verdict, "response": verdict}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_preference_task(
    out_dir: str | Path,
    num_train: int,
    num_heldout: int,
    seed: int = 0,
    *,
    image_size: int = 112,
    lazy_share: float = 0.0,
    num_judge: int = 0,
) -> dict[str, Path]:
    """Write images/, train.jsonl, sft.jsonl, heldout.json and (``num_judge`` > 0) judge_sft.jsonl +
    judge_heldout.jsonl (a fifth of ``num_judge``, at least 20). ``lazy_share``: how often the SFT teacher
    takes Response 1 without looking. Returns the paths by name (train, sft, heldout, images, judge_*)."""
    if not 0.0 <= lazy_share <= 1.0:
        raise ValueError(f"lazy_share must be in [0, 1], got {lazy_share}")
    if num_train < 1 or num_heldout < 1 or image_size < 24 or num_judge < 0:
        raise ValueError(
            "write_preference_task needs num_train >= 1, num_heldout >= 1, image_size >= 24 and num_judge >= 0"
        )
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    items: dict[str, list[tuple[PreferenceItem, str]]] = {"train": [], "heldout": []}
    for split, count in (("train", num_train), ("heldout", num_heldout)):
        for i in range(count):
            shape = big_shape(rng, image_size)
            image = f"images/{split}_{i:05d}.png"
            draw_shapes_image([shape], image_size).save(out / image, optimize=True)
            items[split].append((make_preference_item(rng, shape), image))
    train = [r1_reward_row(item, image) for item, image in items["train"]]
    sft = [
        {**row, "response": teacher_response(item, rng.random() < lazy_share)}
        for row, (item, _) in zip(train, items["train"], strict=True)
    ]
    heldout = [
        multimodal_rewardbench_row(item, image, f"pref-heldout-{i:05d}")
        for i, (item, image) in enumerate(items["heldout"])
    ]
    result = {"train": out / "train.jsonl", "sft": out / "sft.jsonl", "heldout": out / "heldout.json"}
    result["images"] = out / "images"
    _write_jsonl(result["train"], train)
    _write_jsonl(result["sft"], sft)
    result["heldout"].write_text(json.dumps(heldout, indent=1), encoding="utf-8")
    if num_judge:  # the judge's held-out examples come from the held-out items
        for name, split, count in (
            ("judge_sft", "train", num_judge),
            ("judge_heldout", "heldout", max(20, num_judge // 5)),
        ):
            pool = [item for item, _ in items[split]]
            result[name] = out / f"{name}.jsonl"
            _write_jsonl(result[name], [judge_row(rng, pool[i % len(pool)]) for i in range(count)])
    return result
