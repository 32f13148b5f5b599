"""The TRL side of bench/vs_trl.py: TRL's GRPOTrainer on the same model, prompts and reward, timed per step.

Runs inside the benchmark's own venv (torch + trl; nothing from ``openrlhf`` is imported here):

    python bench/vs_trl_trl_side.py --model DIR --prompts train.json --reward reward.py \
        --prompts-per-step 2 --samples 4 --max-new-tokens 32 --steps 6 --out trl.json

Per step it records the wall time from ``on_step_begin`` to ``on_step_end`` of a TrainerCallback. In TRL 1.x
generation happens inside ``training_step`` (``_prepare_inputs`` -> ``_generate_and_score_completions``), so
that interval holds generation, reward, the loss forward/backward and the optimizer step: a whole GRPO step.
The reward is the same ``reward_func(queries, prompts, labels)`` file the project trains with, called through
a thin TRL-style adapter that also records the completions' token lengths.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="HF checkpoint folder (with tokenizer)")
    parser.add_argument("--prompts", required=True, help="OmniRL JSON list: problem, solution, task")
    parser.add_argument("--reward", required=True, help=".py file defining reward_func(queries, prompts, labels)")
    parser.add_argument("--prompts-per-step", type=int, required=True)
    parser.add_argument("--samples", type=int, required=True, help="completions per prompt (num_generations)")
    parser.add_argument("--max-new-tokens", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", required=True, help="the trainer's output_dir (nothing is saved there)")
    parser.add_argument("--out", required=True, help="JSON results file")
    return parser.parse_args(argv)


def load_reward_func(path: str):
    spec = importlib.util.spec_from_file_location("bench_shared_reward", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reward_func


def make_trl_reward(reward_func, lengths: list[float]):
    """TRL's reward signature around the OpenRLHF-style ``reward_func(queries, prompts, labels)``.

    Queries are prompt text + completion text, as the project sends them; labels carry the row's solution
    and task, as the project's ``Sample.reward_label()`` does.
    """

    def sums_reward(prompts, completions, completion_ids, prompt_text, solution, task, **kw):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        queries = [p + t for p, t in zip(prompt_text, texts, strict=True)]
        labels = [{"solution": s, "task": t} for s, t in zip(solution, task, strict=True)]
        out = reward_func(queries, list(prompt_text), labels)
        rewards = out["rewards"] if isinstance(out, dict) else out
        lengths.append(sum(len(ids) for ids in completion_ids) / max(1, len(completion_ids)))
        return [float(r) for r in rewards]

    return sums_reward


def build_dataset(prompts_file: str, tokenizer):
    """Conversational rows (TRL applies the chat template, as for any user) plus the templated text for the
    reward adapter; returns (dataset, mean prompt tokens)."""
    from datasets import Dataset

    rows, lengths = [], []
    for row in json.loads(Path(prompts_file).read_text()):
        messages = [{"role": "user", "content": row["problem"]}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        lengths.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
        rows.append({"prompt": messages, "prompt_text": text, "solution": str(row["solution"]), "task": row["task"]})
    return Dataset.from_list(rows), sum(lengths) / len(lengths)


def make_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time of each optimizer step, from on_step_begin to on_step_end."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._start)

    return StepTimer()


def make_config(args: argparse.Namespace):
    from trl import GRPOConfig

    rows = args.prompts_per_step * args.samples
    return GRPOConfig(
        output_dir=args.output_dir,
        per_device_train_batch_size=rows,  # one forward over all rows, one optimizer step per rollout
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        num_generations=args.samples,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        beta=0.0,  # no reference model
        learning_rate=args.learning_rate,
        lr_scheduler_type="constant",  # the project's default: constant, no warm-up
        adam_beta2=0.95,  # the project's default betas (0.9, 0.95)
        max_grad_norm=1.0,
        max_steps=args.steps,
        gradient_checkpointing=False,  # GRPOConfig defaults to True; the project's default is off
        use_cpu=True,
        bf16=False,
        use_vllm=False,
        dataloader_num_workers=0,
        logging_steps=10**6,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=args.seed,
    )


CONFIG_KEYS = (
    "per_device_train_batch_size",
    "generation_batch_size",
    "steps_per_generation",
    "num_generations",
    "num_iterations",
    "max_completion_length",
    "beta",
    "loss_type",
    "top_k",
    "gradient_checkpointing",
    "bf16",
    "learning_rate",
    "lr_scheduler_type",
)


def versions() -> dict[str, str]:
    import importlib.metadata as md

    return {name: md.version(name) for name in ("torch", "trl", "transformers", "accelerate", "datasets")}


def time_generation(trainer_cls) -> list[float]:
    """Wrap GRPOTrainer._generate (its rollout: generate + decode) to record its wall time per call."""
    times: list[float] = []
    original = trainer_cls._generate

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            times.append(time.perf_counter() - start)

    trainer_cls._generate = timed
    return times


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    import torch
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    dataset, prompt_tokens = build_dataset(args.prompts, tokenizer)
    lengths: list[float] = []
    timer = make_timer()
    generation_seconds = time_generation(GRPOTrainer)
    trainer = GRPOTrainer(
        model=args.model,
        reward_funcs=make_trl_reward(load_reward_func(args.reward), lengths),
        args=make_config(args),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    t_setup = time.perf_counter() - t0
    trainer.train()
    result = {
        "step_seconds": timer.times,
        "generation_seconds": generation_seconds,
        "completion_length_per_step": lengths,
        "mean_completion_length": statistics.fmean(lengths) if lengths else None,
        "mean_prompt_tokens": prompt_tokens,
        "torch_num_threads": torch.get_num_threads(),
        "setup_seconds": t_setup,
        "in_process_seconds": time.perf_counter() - t0,
        "versions": versions(),
        "python": platform.python_version(),
        "trl_eos_token_ids": list(trainer.eos_token_ids),
        "model_dtype": str(trainer.model.dtype),
        "config": {key: getattr(trainer.args, key) for key in CONFIG_KEYS},
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
