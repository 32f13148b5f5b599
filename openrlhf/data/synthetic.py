"""Synthetic demo tasks, deterministic for a seed: arithmetic (text) and shapes (tiny images).

arithmetic: word problems with +, - and * ("What is 7 + 5?"), written as OmniRL JSON lists
    ``{"problem", "solution", "task": "math", "level"}``. ``difficulty`` d in 1..4 draws each problem's level
    uniformly from 1..d: level 1 single digits, 2 up to 20 (x up to 9), 3 up to 99 (x up to 12),
    4 two-step problems (a + b - c, a * b + c). The SFT file holds the training problems with a ``response``
    (Sample.response, the SFT target) ``<think>REASONING</think><answer>N</answer>``. REASONING is the worked decomposition
    ("47 + 38 = 40 + 30 + 7 + 8 = 70 + 15 = 85") with probability ``full_reasoning_prob``, else just
    "47 + 38 = 85": a small model learns the format and easy sums from it, and RL has room to improve.
    Held-out problems never share an expression with training problems.
shapes: PNG images (default 56x56, a few hundred bytes) of 1-3 coloured shapes of distinct kinds, with one
    question each, written as VLM-R1 jsonl with ``accu_reward_method``: counting ("How many shapes ..."),
    exact (the colour of the circle), choice (the colour, as options A-D) and rec (the box of the triangle,
    label ``[x1, y1, x2, y2]`` in image pixels, inclusive; the loader adds ``image_size``). The SFT file repeats
    the training rows with a ``response``: a short description in <think> and the answer in <answer>.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageDraw

# --------------------------------------------------------------------------- arithmetic

NAMES = ("Tom", "Ana", "Sam", "Mia", "Leo", "Eva")
ITEMS = ("apples", "books", "coins", "pens", "cards", "stones")
TEMPLATES = {
    "+": ("What is {a} + {b}?", "{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?"),
    "-": ("What is {a} - {b}?", "{name} has {a} {item} and gives away {b}. How many {item} are left?"),
    "*": ("What is {a} * {b}?", "There are {a} boxes with {b} {item} in each box. How many {item} are there in total?"),
}
MAX_DIFFICULTY = 4


@dataclass(frozen=True)
class ArithmeticProblem:
    question: str
    expression: str  # "47 + 38": held-out and training problems never share one
    answer: int
    short_reasoning: str  # "47 + 38 = 85"
    full_reasoning: str  # "47 + 38 = 40 + 30 + 7 + 8 = 70 + 15 = 85"
    level: int


def worked_steps(a: int, op: str, b: int) -> str:
    """The decomposition of one operation into tens and ones, e.g. ``47 + 38 = 40 + 30 + 7 + 8 = 70 + 15 = 85``,
    ``52 - 17 = 52 - 10 - 7 = 42 - 7 = 35``, ``7 * 12 = 7 * 10 + 7 * 2 = 70 + 14 = 84``; plain ``a op b = r``
    when there is nothing to decompose.
    """
    result = {"+": a + b, "-": a - b, "*": a * b}[op]
    head = f"{a} {op} {b}"
    (at, ao), (bt, bo) = divmod(a, 10), divmod(b, 10)
    if op == "+":
        terms = [t * 10 for t in (at, bt) if t] + [o for o in (ao, bo) if o]
        if len(terms) > 2:
            middle = [x for x in ((at + bt) * 10, ao + bo) if x]
            chain = [" + ".join(map(str, terms))] + ([" + ".join(map(str, middle))] if len(middle) > 1 else [])
            return " = ".join([head, *chain, str(result)])
    if op == "-" and bt and bo:
        return f"{head} = {a} - {bt * 10} - {bo} = {a - bt * 10} - {bo} = {result}"
    if op == "*" and bt and bo and a > 1:
        return f"{head} = {a} * {bt * 10} + {a} * {bo} = {a * bt * 10} + {a * bo} = {result}"
    return f"{head} = {result}"


def _operands(rng: random.Random, op: str, level: int) -> tuple[int, int]:
    top = {1: 9, 2: 20, 3: 99}[level] if op != "*" else {1: 5, 2: 9, 3: 12}[level]
    low = 0 if level == 1 else 2
    a, b = rng.randint(low, top), rng.randint(low, top)
    if op == "-" and b > a:
        a, b = b, a
    return a, b


def make_arithmetic_problem(rng: random.Random, level: int) -> ArithmeticProblem:
    """One problem of the given level (1..4)."""
    if not 1 <= level <= MAX_DIFFICULTY:
        raise ValueError(f"arithmetic level must be 1..{MAX_DIFFICULTY}, got {level}")
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    if level == 4:  # two steps: a + b - c or a * b + c
        if rng.random() < 0.5:
            a, b = rng.randint(1, 30), rng.randint(1, 30)
            c = rng.randint(0, a + b)
            first, second = worked_steps(a, "+", b), worked_steps(a + b, "-", c)
            expression, answer = f"{a} + {b} - {c}", a + b - c
            question = f"{name} has {a} {item}, gets {b} more and gives away {c}. How many {item} are left?"
        else:
            a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 20)
            first, second = worked_steps(a, "*", b), worked_steps(a * b, "+", c)
            expression, answer = f"{a} * {b} + {c}", a * b + c
            question = f"What is {a} * {b} + {c}?"
        short = f"{expression} = {answer}"
        return ArithmeticProblem(question, expression, answer, short, f"{first}, {second}", level)
    op = rng.choice("+-*")
    a, b = _operands(rng, op, level)
    template = rng.choice(TEMPLATES[op])
    answer = {"+": a + b, "-": a - b, "*": a * b}[op]
    expression = f"{a} {op} {b}"
    return ArithmeticProblem(
        template.format(a=a, b=b, name=name, item=item),
        expression,
        answer,
        f"{expression} = {answer}",
        worked_steps(a, op, b),
        level,
    )


def sft_target(reasoning: str, answer: object) -> str:
    return f"<think>{reasoning}</think><answer>{answer}</answer>"


def _arithmetic_set(
    rng: random.Random, count: int, difficulty: int, banned: set[str], key=lambda p: p.expression
) -> list[ArithmeticProblem]:
    problems: list[ArithmeticProblem] = []
    tries = 0
    while len(problems) < count:
        tries += 1
        if tries > 200 * count + 1000:
            raise ValueError(
                f"could not draw {count} arithmetic problems at difficulty {difficulty} without repeating held-out "
                "expressions: lower num_heldout or raise the difficulty"
            )
        problem = make_arithmetic_problem(rng, rng.randint(1, difficulty))
        if key(problem) not in banned:
            problems.append(problem)
    return problems


def check_sizes(num_train: int, num_heldout: int) -> None:
    if num_train < 1 or num_heldout < 0:
        raise ValueError(f"num_train must be >= 1 and num_heldout >= 0, got {num_train}, {num_heldout}")


def _write_json_list(path: Path, rows: list[dict]) -> None:
    body = ",\n".join("  " + json.dumps(row, ensure_ascii=False) for row in rows)
    path.write_text("[\n" + body + "\n]\n", encoding="utf-8")


def write_arithmetic_task(
    out_dir: str | Path,
    num_train: int,
    num_heldout: int,
    seed: int = 0,
    *,
    difficulty: int = 3,
    full_reasoning_prob: float = 0.5,
    distinct: str = "expression",
) -> dict[str, Path]:
    """Write train.json, heldout.json (OmniRL JSON lists) and sft.json; returns {"train", "heldout", "sft"}.

    ``distinct="expression"``: no held-out expression (``"3 + 8"``) appears in training, so held-out accuracy
    measures arithmetic on unseen operand pairs. ``distinct="question"``: held-out questions (their full text)
    are unseen but expressions may recur in other wordings, which suits a model too small to generalise
    arithmetic to unseen operands (the tiny demo).
    """
    if distinct not in ("expression", "question"):
        raise ValueError(f"distinct must be 'expression' or 'question', got {distinct!r}")
    if not 1 <= difficulty <= MAX_DIFFICULTY:
        raise ValueError(f"difficulty must be 1..{MAX_DIFFICULTY}, got {difficulty}")
    check_sizes(num_train, num_heldout)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    heldout: list[ArithmeticProblem] = []
    seen: set[str] = set()
    key = (lambda p: p.expression) if distinct == "expression" else (lambda p: p.question)
    for _ in range(num_heldout):  # held-out items are distinct from each other too
        problem = _arithmetic_set(rng, 1, difficulty, seen, key)[0]
        seen.add(key(problem))
        heldout.append(problem)
    train = _arithmetic_set(rng, num_train, difficulty, seen, key)

    def row(p: ArithmeticProblem) -> dict:
        return {"problem": p.question, "solution": str(p.answer), "task": "math", "level": p.level}

    paths = {"train": out / "train.json", "heldout": out / "heldout.json", "sft": out / "sft.json"}
    _write_json_list(paths["train"], [row(p) for p in train])
    _write_json_list(paths["heldout"], [row(p) for p in heldout])
    sft_rows = []
    for p in train:
        reasoning = p.full_reasoning if rng.random() < full_reasoning_prob else p.short_reasoning
        sft_rows.append({**row(p), "response": sft_target(reasoning, p.answer)})
    _write_json_list(paths["sft"], sft_rows)
    return paths


# --------------------------------------------------------------------------- sums

SUM_TERM_MAX = 9


@dataclass(frozen=True)
class SumProblem:
    terms: tuple[int, ...]

    @property
    def answer(self) -> int:
        return sum(self.terms)

    @property
    def question(self) -> str:
        return "What is " + " + ".join(map(str, self.terms)) + "?"

    @property
    def direct(self) -> str:
        """``7 + 1 + 5 + 9 = 22``: the whole sum in one go."""
        return " + ".join(map(str, self.terms)) + f" = {self.answer}"

    @property
    def worked(self) -> str:
        """``7 + 1 = 8, 8 + 5 = 13, 13 + 9 = 22``: a running total, one addition at a time."""
        total, steps = self.terms[0], []
        for term in self.terms[1:]:
            steps.append(f"{total} + {term} = {total + term}")
            total += term
        return ", ".join(steps)


def write_sums_task(
    out_dir: str | Path,
    num_train: int,
    num_heldout: int,
    seed: int = 0,
    *,
    min_terms: int = 5,
    max_terms: int = 7,
    worked_prob: float = 0.4,
    fact_share: float = 0.4,
) -> dict[str, Path]:
    """Write train.json, heldout.json (OmniRL JSON lists) and sft.json for chained sums of single digits
    ("What is 7 + 1 + 5 + 9 + 8?"); returns {"train", "heldout", "sft"}.

    Held-out sums never share their sequence of terms with a training sum. SFT targets answer a sum directly
    (``<think>7 + 1 + 5 + 9 + 8 = 30</think>``) or, with probability ``worked_prob``, with a running total
    (``<think>7 + 1 = 8, 8 + 5 = 13, 13 + 9 = 22, 22 + 8 = 30</think>``). ``fact_share`` of the SFT rows are
    one-step facts ("What is 23 + 8?") covering every running total a sum can reach, the table the worked
    form relies on. A small model answers long sums poorly in one go but well one step at a time; with the
    direct form in the majority its greedy answer is direct, so RL has a better behaviour to find in its own
    samples and held-out accuracy can rise (the embedded demo).
    """
    if not 2 <= min_terms <= max_terms:
        raise ValueError(f"need 2 <= min_terms <= max_terms, got {min_terms}, {max_terms}")
    if not 0.0 <= worked_prob <= 1.0 or not 0.0 <= fact_share < 1.0:
        raise ValueError(f"worked_prob must be in [0, 1] and fact_share in [0, 1), got {worked_prob}, {fact_share}")
    check_sizes(num_train, num_heldout)
    if num_heldout > (SUM_TERM_MAX**min_terms) // 2:
        raise ValueError(f"num_heldout {num_heldout} is too many distinct sums of {min_terms} terms")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)

    def draw() -> SumProblem:
        return SumProblem(tuple(rng.randint(1, SUM_TERM_MAX) for _ in range(rng.randint(min_terms, max_terms))))

    heldout: dict[tuple[int, ...], SumProblem] = {}
    while len(heldout) < num_heldout:
        problem = draw()
        heldout.setdefault(problem.terms, problem)
    train: list[SumProblem] = []
    while len(train) < num_train:
        problem = draw()
        if problem.terms not in heldout:
            train.append(problem)

    def row(p: SumProblem) -> dict:
        return {"problem": p.question, "solution": str(p.answer), "task": "math", "terms": len(p.terms)}

    paths = {"train": out / "train.json", "heldout": out / "heldout.json", "sft": out / "sft.json"}
    _write_json_list(paths["train"], [row(p) for p in train])
    _write_json_list(paths["heldout"], [row(p) for p in heldout.values()])
    sft_rows = []
    for p in train:
        reasoning = p.worked if rng.random() < worked_prob else p.direct
        sft_rows.append({**row(p), "response": sft_target(reasoning, p.answer)})
    largest_total = SUM_TERM_MAX * (max_terms - 1)
    for _ in range(round(fact_share * num_train / (1.0 - fact_share))):
        fact = SumProblem((rng.randint(2, largest_total), rng.randint(1, SUM_TERM_MAX)))
        sft_rows.append({**row(fact), "response": sft_target(fact.direct, fact.answer)})
    rng.shuffle(sft_rows)
    _write_json_list(paths["sft"], sft_rows)
    return paths


# --------------------------------------------------------------------------- shapes

SHAPE_KINDS = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220), "yellow": (230, 190, 30)}
BACKGROUND = (255, 255, 255)
QUESTION_KINDS = ("counting", "exact", "choice", "rec")
TEACHER_FAVOURITE = "blue"  # the colour a biased simulated SFT teacher names too often


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, inclusive


def draw_shapes_image(shapes: Sequence[Shape], size: int | tuple[int, int] = 56) -> Image.Image:
    """A palette image (white background) with the shapes drawn filled; saves as a PNG of a few hundred bytes."""
    width, height = (size, size) if isinstance(size, int) else size
    palette = [*BACKGROUND]
    for rgb in COLOURS.values():
        palette.extend(rgb)
    img = Image.new("P", (width, height), 0)
    img.putpalette(palette)
    draw = ImageDraw.Draw(img)
    for shape in shapes:
        fill = 1 + list(COLOURS).index(shape.colour)
        x1, y1, x2, y2 = shape.box
        if shape.kind == "circle":
            draw.ellipse(shape.box, fill=fill)
        elif shape.kind == "square":
            draw.rectangle(shape.box, fill=fill)
        elif shape.kind == "triangle":
            draw.polygon([(x1, y2), ((x1 + x2) / 2, y1), (x2, y2)], fill=fill)
        else:
            raise ValueError(f"unknown shape kind {shape.kind!r} (allowed: {', '.join(SHAPE_KINDS)})")
    return img


def random_shapes(rng: random.Random, size: int = 56, max_shapes: int = 3) -> list[Shape]:
    """1..max_shapes shapes of distinct kinds and random colours, with non-overlapping boxes.

    Sides run from a quarter to two fifths of the image (at 112 px: 28-44 px, one or two of the tiny
    VLM's 28 px image tokens); a placement that gets stuck starts over.
    """
    count = rng.randint(1, min(max_shapes, len(SHAPE_KINDS)))
    kinds = rng.sample(SHAPE_KINDS, count)
    boxes: list[tuple[int, int, int, int]] = []
    lo, hi = max(6, size // 4), max(8, size * 2 // 5)
    tries = 0
    while len(boxes) < count:
        tries += 1
        if tries % 200 == 0:
            boxes.clear()
        side = rng.randint(lo, hi)
        x1, y1 = rng.randint(1, size - side - 2), rng.randint(1, size - side - 2)
        box = (x1, y1, x1 + side, y1 + side)
        if all(box[2] + 2 < b[0] or b[2] + 2 < box[0] or box[3] + 2 < b[1] or b[3] + 2 < box[1] for b in boxes):
            boxes.append(box)
    return [Shape(kind, rng.choice(list(COLOURS)), box) for kind, box in zip(kinds, boxes, strict=True)]


def teacher_colour(rng: random.Random, colour: str, bias: float) -> str:
    """The colour a biased simulated SFT teacher names: its favourite (blue) for a shape of another colour
    with probability ``bias``, else the true one (no random draw when ``bias`` is 0, so a fair teacher's data
    is unchanged)."""
    if bias > 0 and colour != TEACHER_FAVOURITE and rng.random() < bias:
        return TEACHER_FAVOURITE
    return colour


def shapes_question(
    rng: random.Random, shapes: Sequence[Shape], kind: str, worked_prob: float = 1.0, teacher_bias: float = 0.0
) -> tuple[str, str, str, str]:
    """(question, answer, accu_reward_method, SFT target) for one image; the question has its <image>.

    Choice questions get a worked target ("The circle is blue, option B.": name the colour, then find its
    letter) with probability ``worked_prob``, else a direct one ("Option B."), which asks the model to do
    both in one go. ``teacher_bias``: the SFT targets (not the answers the reward checks) come from a teacher
    that names blue for a shape of another colour this often (:func:`teacher_colour`).
    """
    target = rng.choice(shapes)
    if kind == "counting":
        n = len(shapes)
        seen = " and ".join(f"a {teacher_colour(rng, s.colour, teacher_bias)} {s.kind}" for s in shapes)
        return ("<image>How many shapes are in the image?", str(n), "counting", sft_target(f"I see {seen}, so {n}.", n))
    if kind == "exact":
        said = teacher_colour(rng, target.colour, teacher_bias)
        return (
            f"<image>What colour is the {target.kind}?",
            target.colour,
            "exact",
            sft_target(f"The {target.kind} is {said}.", said),
        )
    if kind == "choice":
        options = rng.sample(list(COLOURS), len(COLOURS))
        letters = "ABCD"
        letter = letters[options.index(target.colour)]
        said = teacher_colour(rng, target.colour, teacher_bias)
        said_letter = letters[options.index(said)]
        listing = " ".join(f"{letters[i]}. {c}" for i, c in enumerate(options))
        worked = rng.random() < worked_prob
        reasoning = f"The {target.kind} is {said}, option {said_letter}." if worked else f"Option {said_letter}."
        return (
            f"<image>What colour is the {target.kind}? {listing}",
            letter,
            "choice",
            sft_target(reasoning, said_letter),
        )
    if kind == "rec":
        box = json.dumps(list(target.box))  # "[x1, y1, x2, y2]"
        x1, y1, x2, y2 = target.box
        return (
            f"<image>Give the bounding box of the {target.kind} as [x1, y1, x2, y2].",
            box,
            "rec",
            sft_target(f"The {target.kind} spans x {x1} to {x2} and y {y1} to {y2}.", box),
        )
    raise ValueError(f"unknown question kind {kind!r} (allowed: {', '.join(QUESTION_KINDS)})")


def _vlm_r1_row(row_id: str, image: str, question: str, answer: str, method: str) -> dict:
    return {
        "id": row_id,
        "image": image,
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
        "accu_reward_method": method,
    }


def write_shapes_task(
    out_dir: str | Path,
    num_train: int,
    num_heldout: int,
    seed: int = 0,
    *,
    image_size: int = 56,
    kinds: Sequence[str] = QUESTION_KINDS,
    worked_prob: float = 1.0,
    teacher_bias: float = 0.0,
) -> dict[str, Path]:
    """Write images/, train.jsonl, heldout.jsonl and sft.jsonl (VLM-R1 jsonl; image paths relative to out_dir).

    Question kinds cycle in order (repeat a kind to weight it). ``worked_prob``: share of choice
    questions whose SFT target names the colour before the letter; ``teacher_bias``: how often the SFT
    targets' teacher names blue for another colour (see :func:`shapes_question`; the answers stay true).
    Returns {"train", "heldout", "sft", "images"}.
    """
    for name, value in (("worked_prob", worked_prob), ("teacher_bias", teacher_bias)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    for kind in kinds:
        if kind not in QUESTION_KINDS:
            raise ValueError(f"unknown question kind {kind!r} (allowed: {', '.join(QUESTION_KINDS)})")
    if not kinds or num_train < 1 or num_heldout < 0 or image_size < 24:
        raise ValueError("write_shapes_task needs kinds, num_train >= 1, num_heldout >= 0 and image_size >= 24")
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = {"train": out / "train.jsonl", "heldout": out / "heldout.jsonl", "sft": out / "sft.jsonl", "images": images}
    rows: dict[str, list[dict]] = {"train": [], "heldout": [], "sft": []}
    for split, count in (("train", num_train), ("heldout", num_heldout)):
        for i in range(count):
            shapes = random_shapes(rng, image_size)
            name = f"images/{split}_{i:05d}.png"
            draw_shapes_image(shapes, image_size).save(out / name, optimize=True)
            question, answer, method, target = shapes_question(
                rng, shapes, kinds[i % len(kinds)], worked_prob, teacher_bias if split == "train" else 0.0
            )
            row_id = f"shapes-{split}-{i:05d}"
            rows[split].append(_vlm_r1_row(row_id, name, question, answer, method))
            if split == "train":
                rows["sft"].append({**rows[split][-1], "response": target})
    for split, split_rows in rows.items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in split_rows)
        paths[split].write_text(text, encoding="utf-8")
    return paths


# --------------------------------------------------------------------------- by config


class DemoTask(Protocol):
    """The knobs :func:`write_demo_task` reads: the fields of the ``demo`` config section
    (:class:`openrlhf.config.DemoConfig`), named here so that the data layer does not import the config."""

    task: str
    num_train: int
    num_heldout: int
    difficulty: int
    full_reasoning_prob: float
    heldout_distinct: str
    image_size: int
    shape_kinds: list[str]
    teacher_bias: float
    min_terms: int
    max_terms: int
    fact_share: float
    judge_num_train: int


def write_demo_task(demo: DemoTask, out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """The generated task ``demo.task`` names, with its knobs from ``demo`` (the embedded demo and
    ``openrlhf-data synth`` both come here, with the ``demo`` config section): sums or arithmetic (text), shapes
    (images), preference (image pairs for a generative reward model, :mod:`openrlhf.data.synthetic_preference`)."""
    from openrlhf.data.synthetic_preference import write_preference_task
    from openrlhf.data.synthetic_tools import write_products_task

    writers = {
        "preference": (
            write_preference_task,
            {"image_size": demo.image_size, "lazy_share": demo.teacher_bias, "num_judge": demo.judge_num_train},
        ),
        "shapes": (
            write_shapes_task,
            {
                "image_size": demo.image_size,
                "kinds": demo.shape_kinds,
                "worked_prob": demo.full_reasoning_prob,
                "teacher_bias": demo.teacher_bias,
            },
        ),
        "sums": (
            write_sums_task,
            {
                "min_terms": demo.min_terms,
                "max_terms": demo.max_terms,
                "worked_prob": demo.full_reasoning_prob,
                "fact_share": demo.fact_share,
            },
        ),
        "products": (write_products_task, {"tool_share": demo.full_reasoning_prob}),
        "arithmetic": (
            write_arithmetic_task,
            {
                "difficulty": demo.difficulty,
                "full_reasoning_prob": demo.full_reasoning_prob,
                "distinct": demo.heldout_distinct,
            },
        ),
    }
    writer, knobs = writers[demo.task]
    return writer(out_dir, demo.num_train, demo.num_heldout, seed, **knobs)
