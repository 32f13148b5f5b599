r"""openrlhf-eval: REC (accuracy at IoU > 0.5, mean IoU), counting and choice accuracy of a checkpoint.

openrlhf-eval --config configs/demo_vlm.yaml --actor.model_name_or_path CKPT \
    --data.eval_paths '[rows.jsonl]' --train.output_dir outputs/eval --box last
    Greedy answers over the dataset (rollout.backend: HF engine, or vLLM with --vllm.tensor_parallel_size N
    workers, its CPU build on CPUs), scored by task (math: math-verify, as the reward service); writes
    <train.output_dir>/eval_report.json and eval_outputs.json (VLM-R1's log format). --box last|first: which
    box of the answer a REC row is judged by (default last, VLM-R1's evaluation rule).
openrlhf-eval --from-outputs rec_outputs.json --box last --task rec --out report.json
    Score saved model outputs ({"results": [{"question", "ground_truth", "model_output"}, ...]}) offline.
openrlhf-eval --task reward_model --actor.model_name_or_path RM --data.eval_paths '[pairs.parquet]' \
    --voting 5 --order both --out result.json
    Judge pairwise benchmarks (VL-RewardBench parquet, MM-RLHF-RewardBench jsonl, Multimodal RewardBench json)
    with a generative reward model in both orders (--order random: one order per pair), --voting K samples
    each (default 1): accuracy, Voting@K, position consistency, invalid rate, per source. Writes result.json
    and result_outputs.json (default <train.output_dir>/reward_eval_report.json).
openrlhf-eval --from-outputs result_outputs.json --task reward_model --out report.json
    The same figures from saved reward-model outputs, without a model.
"""

from __future__ import annotations

import argparse
import json
import sys

from openrlhf.cli.common import HelpFormatter, parse_args, run_with_config
from openrlhf.config import Config


def _print_summary(report: dict) -> None:
    head = f"rows {report['rows']}, accuracy {report['accuracy']:.4f}" if report["rows"] else "no rows"
    engine = f" ({report['engine']})" if report.get("engine") else ""
    print(f"openrlhf-eval: {head}{engine}")
    for task, entry in report["tasks"].items():
        extra = f", mean IoU {entry['mean_iou']:.4f}" if "mean_iou" in entry else ""
        print(f"  {task}: {entry['rows']} rows, accuracy {entry['accuracy']:.4f}{extra}")


def from_outputs_parser() -> argparse.ArgumentParser:
    """The options of ``openrlhf-eval --from-outputs`` (scoring saved outputs needs no config)."""
    parser = argparse.ArgumentParser(
        prog="openrlhf-eval --from-outputs", description="score saved outputs", formatter_class=HelpFormatter
    )
    parser.add_argument("--from-outputs", required=True, metavar="FILE", help="the saved outputs (JSON)")
    parser.add_argument("--box", choices=["last", "first"], default="last", help="which box a REC row is judged by")
    parser.add_argument("--task", default="rec", help="task of rows that name none; reward_model for pairwise outputs")
    parser.add_argument("--iou-threshold", type=float, default=0.5, help="REC: a box is right above this IoU")
    parser.add_argument("--out", default="", help="write the JSON report here (default: stdout only)")
    return parser


def _from_outputs(argv: list[str]) -> int:
    args = parse_args(from_outputs_parser(), argv)
    if isinstance(args, int):
        return args
    try:
        if args.task == "reward_model":
            from openrlhf.eval.reward_model import score_outputs_file as score_reward_outputs

            report = score_reward_outputs(args.from_outputs)
        else:
            from openrlhf.eval.offline import score_outputs_file

            report = score_outputs_file(
                args.from_outputs, box=args.box, iou_threshold=args.iou_threshold, default_task=args.task
            )
    except (ValueError, FileNotFoundError) as exc:
        print(f"openrlhf-eval: error: {exc}", file=sys.stderr)
        return 1
    if args.task == "reward_model":
        from openrlhf.eval.reward_model import print_summary

        print_summary(report)
    else:
        _print_summary(report)
    if report.get("published_accuracy") is not None:
        print(f"  published accuracy {report['published_accuracy']:.4f}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
        print(f"openrlhf-eval: report written to {args.out}")
    else:
        print(json.dumps({k: v for k, v in report.items() if k != "per_row"}, indent=2))
    return 0


def _pop_option(argv: list[str], name: str, choices: tuple[str, ...] | None, default: str) -> tuple[str, list[str]]:
    """Take ``--name VALUE`` / ``--name=VALUE`` out of argv (options outside the config tree); choices None: any."""
    rest, value, i = [], default, 0
    while i < len(argv):
        arg = argv[i]
        if arg == f"--{name}" and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        elif arg.startswith(f"--{name}="):
            value, i = arg.split("=", 1)[1], i + 1
        else:
            rest.append(arg)
            i += 1
    if choices is not None and value not in choices:
        raise ValueError(f"--{name} {value!r}: allowed {', '.join(choices)}")
    return value, rest


def _reward_model(argv: list[str]) -> int:
    """``--task reward_model``: judge pairwise benchmarks with a checkpoint (openrlhf/eval/reward_model.py)."""
    try:
        _, rest = _pop_option(argv, "task", ("reward_model",), "reward_model")
        voting, rest = _pop_option(rest, "voting", None, "1")
        order, rest = _pop_option(rest, "order", ("both", "random"), "both")
        out, rest = _pop_option(rest, "out", None, "")
        if not voting.isdigit() or int(voting) < 1:
            raise ValueError(f"--voting {voting!r}: must be a whole number >= 1")
    except ValueError as exc:
        print(f"openrlhf-eval: {exc}", file=sys.stderr)
        return 2

    def run(cfg: Config) -> None:
        from openrlhf.eval.reward_model import evaluate_reward_model, print_summary

        report = evaluate_reward_model(cfg, voting=int(voting), order=order, out=out or None)
        print_summary(report)
        print(f"openrlhf-eval: report written to {report['report_path']}, outputs to {report['outputs_path']}")

    return run_with_config("openrlhf-eval", run, rest, description=__doc__)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--from-outputs" or a.startswith("--from-outputs=") for a in argv):
        return _from_outputs(argv)
    if any(a == "--task" or a.startswith("--task=") for a in argv):
        return _reward_model(argv)
    try:
        box, rest = _pop_option(argv, "box", ("last", "first"), "last")
    except ValueError as exc:
        print(f"openrlhf-eval: {exc}", file=sys.stderr)
        return 2

    def run(cfg: Config) -> None:
        from openrlhf.eval.checkpoint import evaluate_checkpoint

        report = evaluate_checkpoint(cfg, box=box)
        _print_summary(report)
        print(f"openrlhf-eval: report written to {report['report_path']}")

    return run_with_config("openrlhf-eval", run, rest, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
