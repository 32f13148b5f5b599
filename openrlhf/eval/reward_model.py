"""Evaluate a generative pairwise reward model (R1-Reward) on pairwise benchmarks: judge, vote, score.

For every pair of ``data.eval_paths`` (any layout of :mod:`openrlhf.eval.pairwise_data`) the checkpoint
``actor.model_name_or_path`` is asked R1-Reward's comparison question
(:func:`openrlhf.data.prompts.r1_reward_judge_prompt`, the phrasing of the project's R1-Reward training rows,
examples/data/r1_reward.jsonl) with the pair's images, in both orders
(``order="both"``: Response 1 / Response 2 = (r0, r1), then (r1, r0)) or in one order drawn per pair by a
generator seeded with ``train.seed`` (``order="random"``). Each prompt gets K = ``voting`` sampled outputs
(SamplingParams n = K) at ``eval.temperature``, or when that is empty at 1.0 for K > 1 and greedily for K = 1.
Prompts are built as in training (:class:`openrlhf.rollout.prompt_encoder.PromptEncoder`: chat template,
``data.system_prompt``, ``data.task_suffix``, min/max pixels); generation uses ``rollout.backend`` in this
process (:func:`openrlhf.eval.checkpoint.make_engine`). The figures are :mod:`openrlhf.eval.pairwise_metrics`'.

Writes the report to ``out`` (default ``<train.output_dir>/reward_eval_report.json``) and every output to
``<out stem>_outputs.json`` (``{"task": "reward_model", "voting", "order", "results": [{"id", "where",
"source", "group", "preferred", "question", "responses", "judgements": [{"order", "outputs"}]}]}``), which
:func:`score_outputs_file` (``openrlhf-eval --from-outputs FILE --task reward_model``) re-scores without a model.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from pathlib import Path
from typing import Any

from openrlhf.config import Config, ConfigError
from openrlhf.data.prompts import r1_reward_judge_prompt
from openrlhf.data.sample import Sample
from openrlhf.eval.pairwise_data import PreferencePair, load_pairs
from openrlhf.eval.pairwise_metrics import ORDERS, judgements_from_results, score_judgements
from openrlhf.utils.errors import UserError

REQUESTS_PER_CALL = 64  # prompts per engine call: the progress bar's step
OUTPUTS_TASK = "reward_model"


def judge_sample(pair: PreferencePair, order: str, image_paths: list[str]) -> Sample:
    """The pair shown in ``order`` as a one-turn chat Sample (text, then one image part per image, as in the
    R1-Reward training rows); its label is the position of the preferred response."""
    shown = ORDERS[order]
    text = r1_reward_judge_prompt(pair.question, pair.responses[shown[0]], pair.responses[shown[1]])
    content = [{"type": "text", "text": text}] + [{"type": "image"} for _ in image_paths]
    label = f"<answer>{shown.index(pair.preferred) + 1}</answer>"
    sample = Sample([{"role": "user", "content": content}], list(image_paths), label, "preference", id=pair.id)
    sample.source, sample.line = pair.file, pair.line
    return sample


def plan_orders(pairs: list[PreferencePair], order: str, seed: int) -> list[list[str]]:
    """The orders each pair is judged in: both, or one drawn per pair by ``random.Random(seed)``."""
    if order == "both":
        return [["forward", "swapped"] for _ in pairs]
    if order == "random":
        rng = random.Random(seed)
        return [[rng.choice(["forward", "swapped"])] for _ in pairs]
    raise ValueError(f"order {order!r}: allowed both, random")


def judge_sampling_params(cfg: Config, voting: int):
    """SamplingParams with n = K at ``eval.temperature`` (empty: 1.0 for K > 1, greedy for K = 1)."""
    from openrlhf.config import EvalConfig
    from openrlhf.trainer.evaluation import eval_sampling_params

    if voting < 1:
        raise ValueError(f"--voting {voting}: must be >= 1")
    temperature = cfg.eval.temperature if cfg.eval.temperature is not None else (1.0 if voting > 1 else 0.0)
    if voting > 1 and temperature == 0:
        raise ValueError(
            f"--voting {voting} with eval.temperature=0: greedy decoding gives {voting} identical verdicts"
        )
    eval_cfg = EvalConfig(temperature=temperature, n_samples_per_prompt=voting)
    return eval_sampling_params(cfg.model_copy(update={"eval": eval_cfg}), cfg.train.seed)


def _image_paths(pair: PreferencePair) -> list[str]:
    from openrlhf.data.images import store_embedded_image

    return [str(store_embedded_image(ref)) if isinstance(ref, bytes) else ref for ref in pair.images]


def _generate(cfg: Config, pairs: list[PreferencePair], orders: list[list[str]], params) -> list[list[list[str]]]:
    """outputs[pair][order slot] = the K texts."""
    from tqdm import tqdm

    from openrlhf.eval.checkpoint import make_engine
    from openrlhf.rollout.prompt_encoder import PromptEncoder

    jobs = [(i, slot) for i, pair_orders in enumerate(orders) for slot in range(len(pair_orders))]
    outputs: list[list[list[str]]] = [[[] for _ in pair_orders] for pair_orders in orders]
    encoder = PromptEncoder(cfg)
    engine = make_engine(cfg)
    with tqdm(total=len(jobs), desc="judging", unit="prompt") as bar:
        for call, start in enumerate(range(0, len(jobs), REQUESTS_PER_CALL)):
            chunk = jobs[start : start + REQUESTS_PER_CALL]
            requests = []
            for i, slot in chunk:
                sample = judge_sample(pairs[i], orders[i][slot], _image_paths(pairs[i]))
                requests.append(encoder.encode(sample).request)
            results = engine.generate(requests, dataclasses.replace(params, seed=params.seed + call))
            for (i, slot), outs in zip(chunk, results, strict=True):
                outputs[i][slot] = [out.text for out in outs]
            bar.update(len(chunk))
    return outputs


def saved_results(pairs: list[PreferencePair], orders: list[list[str]], outputs: list[list[list[str]]]) -> list[dict]:
    """The outputs file's ``results``: per pair, its fields and the K texts of each order it was judged in."""
    return [
        {
            "id": pair.id,
            "where": pair.where,
            "benchmark": pair.benchmark,
            "source": pair.source,
            "group": f"{pair.benchmark}:{pair.group}",
            "preferred": pair.preferred,
            "question": pair.question,
            "responses": list(pair.responses),
            "judgements": [{"order": o, "outputs": texts} for o, texts in zip(pair_orders, pair_outputs, strict=True)],
        }
        for pair, pair_orders, pair_outputs in zip(pairs, orders, outputs, strict=True)
    ]


def outputs_path_for(report_path: str | Path) -> Path:
    """Where the outputs of a report go: ``RESULT.json`` -> ``RESULT_outputs.json``."""
    path = Path(report_path)
    return path.with_name(path.stem + "_outputs.json")


def evaluate_reward_model(cfg: Config, *, voting: int = 1, order: str = "both", out: str | None = None) -> dict:
    """Judge every pair of ``data.eval_paths`` with ``actor.model_name_or_path``; score, write and return the report."""
    if not cfg.actor.model_name_or_path:
        raise ConfigError("actor.model_name_or_path is empty: give the reward model checkpoint to evaluate")
    if not Path(cfg.actor.model_name_or_path).exists():
        raise FileNotFoundError(f"actor.model_name_or_path: {cfg.actor.model_name_or_path}: no such folder")
    if not cfg.data.eval_paths:
        raise ConfigError("data.eval_paths is empty: give the pairwise benchmark files to evaluate on")
    t0 = time.perf_counter()
    params = judge_sampling_params(cfg, voting)
    pair_set = load_pairs(cfg.data.eval_paths, cfg.data.image_roots)
    if not pair_set.pairs:
        raise UserError(f"no pairs to judge in {list(cfg.data.eval_paths)} (skipped: {pair_set.skipped})")
    orders = plan_orders(pair_set.pairs, order, cfg.train.seed)
    outputs = _generate(cfg, pair_set.pairs, orders, params)
    gen_seconds = time.perf_counter() - t0
    results = saved_results(pair_set.pairs, orders, outputs)
    meta = {
        "task": OUTPUTS_TASK,
        "checkpoint": cfg.actor.model_name_or_path,
        "datasets": list(cfg.data.eval_paths),
        "voting": voting,
        "order": order,
        "temperature": params.temperature,
        "skipped": pair_set.skipped,
    }
    report = {**meta, **score_judgements(judgements_from_results(results))}
    report_path = Path(out) if out else Path(cfg.train.output_dir) / "reward_eval_report.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    outputs_path = outputs_path_for(report_path)
    outputs_path.write_text(json.dumps({**meta, "results": results}, indent=1), encoding="utf-8")
    report.update(
        seconds=time.perf_counter() - t0,
        generation_seconds=gen_seconds,
        report_path=str(report_path),
        outputs_path=str(outputs_path),
    )
    report_path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def score_outputs_file(path: str | Path) -> dict[str, Any]:
    """The report of saved reward-model outputs, re-scored without a model (errors name file, result, key)."""
    from openrlhf.eval.offline import read_outputs_json

    path = Path(path)
    data = read_outputs_json(path, "reward-model outputs")
    meta = {k: data[k] for k in ("checkpoint", "datasets", "voting", "order", "temperature", "skipped") if k in data}
    judgements = judgements_from_results(data["results"], where=f"{path}: results")
    return {"task": OUTPUTS_TASK, "source_outputs": str(path), **meta, **score_judgements(judgements)}


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def print_summary(report: dict[str, Any]) -> None:
    """The figures, overall and per source, as one table."""
    from rich.console import Console
    from rich.table import Table

    k = report.get("voting", "K")
    table = Table(title=f"reward model: {report.get('order', '')} orders, Voting@{k}")
    columns = ["pairs", "accuracy", "accuracy_voting", "position_consistency", "invalid_rate", "ties"]
    titles = ["pairs", "accuracy", f"voting@{k}", "consistency", "invalid", "ties"]
    table.add_column("source", style="bold", overflow="fold")
    for title in titles:
        table.add_column(title, justify="right")
    for name, figures in [("all", report), *report["per_source"].items()]:
        table.add_row(name, *(_cell(figures.get(c)) for c in columns))
    Console().print(table)
    for reason, count in (report.get("skipped") or {}).items():
        print(f"skipped {count} {reason}")
