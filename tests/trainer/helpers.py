"""Shared pieces of the trainer end-to-end tests: a small run's command line, and running it in-process."""

from __future__ import annotations

import json
from pathlib import Path

from openrlhf.config_loading import load_config

REPO = Path(__file__).resolve().parents[2]
SMALL_RECIPES = str(REPO / "tests" / "trainer_parts" / "small_recipes.yaml")

# A deterministic reward with spread inside every group (so GRPO has advantages): how many distinct
# characters the response uses, scaled to [0, 1] (16 tokens rarely reach 40, so groups keep a spread);
# "accuracy" is the exact-answer check.
REWARD_FUNC = """
def reward_func(queries, prompts, labels, **kw):
    rewards, accuracy = [], []
    for query, prompt, label in zip(queries, prompts, labels):
        response = query[len(prompt):]
        rewards.append(min(len(set(response)), 40) / 40.0)
        accuracy.append(float(str(label) in response))
    return {"rewards": rewards, "scores": accuracy, "components": {"accuracy": accuracy}}
"""


def small_run_args(task: dict, out_dir: Path, *extra: str, steps: int = 2) -> list[str]:
    """The command line of a tiny run: 2 policy workers, 4 prompts x 4 samples, 16 new tokens."""
    return [
        "--config",
        str(task["empty_config"]),
        "--actor.model_name_or_path",
        str(task["model"]),
        "--data.train_paths",
        f"[{task['train']}]",
        "--data.eval_paths",
        f"[{task['heldout']}]",
        "--train.output_dir",
        str(out_dir),
        "--train.max_steps",
        str(steps),
        "--train.rollout_batch_size",
        "4",
        "--rollout.n_samples_per_prompt",
        "4",
        "--rollout.max_new_tokens",
        "16",
        "--actor.num_gpus_per_node",
        "2",
        "--ds.zero_stage",
        "2",
        "--train.learning_rate",
        "1e-4",
        "--logger.progress_bar",
        "false",
        *extra,
    ]


def with_reward_func(task: dict) -> list[str]:
    return ["--reward.reward_func", str(task["reward_func"])]


def config_from(args: list[str]):
    cfg, _ = load_config(args)
    return cfg


def run_training(args: list[str]) -> dict:
    """RLTrainer(cfg).fit() in this process (it reuses the session's Ray and leaves it running)."""
    from openrlhf.trainer.driver import RLTrainer

    return RLTrainer(config_from(args)).fit()


def read_metrics(out_dir: Path) -> list[dict]:
    path = Path(out_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def model_states(ckpt: Path) -> dict:
    """The module weights of a DeepSpeed checkpoint folder (ZeRO-1/2: rank 0's full copy)."""
    import torch

    files = sorted(Path(ckpt).glob("*model_states.pt"))
    assert files, f"no *model_states.pt in {ckpt}: {sorted(p.name for p in Path(ckpt).iterdir())}"
    return torch.load(files[0], map_location="cpu", weights_only=False)["module"]


def same_weights(a: dict, b: dict) -> bool:
    import torch

    assert a.keys() == b.keys()
    return all(torch.equal(a[k], b[k]) for k in a)


def hybrid_recording_trainer_class():
    """RLTrainer that records, before its workers go away, the weight path, both sides' sleep counters and
    (``probe_prompts`` > 0) the engines' greedy answers to the first held-out prompts."""
    import ray
    from openrlhf_helpers import generate

    from openrlhf.trainer.driver import RLTrainer
    from openrlhf.trainer.experience_maker import sampling_params

    class HybridRecordingTrainer(RLTrainer):
        probe_prompts = 0

        def _shutdown(self) -> None:
            res = self.res
            if res is not None and res.engines:
                self.push_mode = res.pusher.describe()
                self.engine_memory = ray.get([e.memory_state.remote() for e in res.engines])
                self.policy_memory = res.policy.call("memory_state")
                self.engine_pids = sorted(ray.get([e.pid.remote() for e in res.engines]))
                self.policy_pids = sorted(res.policy.call("pid"))
                if self.probe_prompts:
                    _, heldout = self._load_data()
                    self.probe = [self.encoder.encode(s) for s in heldout[: self.probe_prompts]]
                    outputs = generate(res.engines, self.probe, sampling_params(self.cfg, 0, greedy=True))
                    self.engine_greedy = [list(o.output_token_ids) for o in outputs]
            super()._shutdown()

    return HybridRecordingTrainer
