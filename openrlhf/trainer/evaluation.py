"""Held-out evaluation: answers to held-out prompts, scored by the run's reward source, and the best model.

Prompts are answered greedily (the default: one answer each) or sampled (``eval.n_samples_per_prompt`` n answers
each at ``eval.temperature``, 0.6 unless set: OpenRLHF's sampled evaluation). With c_ij in {0, 1} the
correctness of answer j to prompt i (the reward's ``accuracy`` component where it has one, else score >= 1):

  eval/pass1    = mean_ij c_ij          (mean correctness: pass@1 estimated from n samples per prompt)
  eval/pass{n}  = mean_i  max_j c_ij    (n > 1: at least one of the prompt's n answers is correct)
  eval/accuracy = eval/pass1            (the greedy case's name, kept)

plus eval/reward and eval/response_length (means over every answer) and each reward component's mean.

``ckpt.best_metric_key`` names one of these (or OpenRLHF's ``eval_default_pass1`` spelling): whenever an
evaluation beats the best value so far, the policy is exported to ``<output_dir>/best_model``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openrlhf.config import ConfigError, eval_metric_name

if TYPE_CHECKING:
    from openrlhf.config import Config
    from openrlhf.rollout.base import SamplingParams
    from openrlhf.trainer.experience_maker import Rollout


def eval_sampling_params(cfg: Config, seed: int) -> SamplingParams:
    """Greedy with one answer per prompt at ``eval.temperature`` 0; else the rollout's top-p / top-k at the
    eval temperature, ``eval.n_samples_per_prompt`` answers each."""
    from openrlhf.rollout.base import SamplingParams

    temperature = cfg.eval.sampling_temperature
    greedy = temperature == 0
    return SamplingParams(
        n=cfg.eval.n_samples_per_prompt,
        temperature=temperature,
        top_p=1.0 if greedy else cfg.rollout.top_p,
        top_k=-1 if greedy else cfg.rollout.top_k,
        max_new_tokens=cfg.rollout.max_new_tokens,
        seed=seed,
    )


def _mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else float("nan")


def eval_metrics(rollout: Rollout) -> dict[str, float]:
    """The metrics of the module docstring from a scored rollout (``rollout.n`` answers per prompt)."""
    n = rollout.n
    accuracy = rollout.components.get("accuracy")
    correct = [float(v) for v in accuracy] if accuracy else [float(s >= 1.0) for s in rollout.scores.tolist()]
    pass1 = _mean(correct)
    result = {
        "eval/pass1": pass1,
        "eval/accuracy": pass1,
        "eval/reward": float(rollout.rewards.mean()),
        "eval/response_length": _mean(len(o.output_token_ids) for o in rollout.outputs),
    }
    if n > 1:
        groups = [correct[i : i + n] for i in range(0, len(correct), n)]
        result[f"eval/pass{n}"] = _mean(max(group) >= 1.0 for group in groups)
    for name, values in rollout.components.items():
        result.setdefault(f"eval/{name}", _mean(values))
    for name in ("tool_call_rate", "agent_turns"):  # multi-turn episodes (openrlhf/trainer/agent_episodes.py)
        if name in rollout.extra_logs:
            result[f"eval/{name}"] = float(rollout.extra_logs[name])
    return result


@dataclass
class BestModel:
    """``ckpt.best_metric_key``: the best value so far and where the policy that reached it was exported."""

    key: str | None
    directory: Path
    value: float | None = None
    step: int | None = None

    @classmethod
    def from_config(cls, cfg: Config, output_dir: Path) -> BestModel:
        return cls(eval_metric_name(cfg.ckpt.best_metric_key), output_dir / "best_model")

    def improved(self, metrics: dict[str, float], step: int) -> bool:
        """True when ``metrics`` (one evaluation's) beat the best so far; then it becomes the best.

        A key the evaluation does not produce is a ValueError listing the ones it does."""
        if self.key is None or not metrics:
            return False
        if self.key not in metrics:
            names = ", ".join(sorted(k for k in metrics if k.startswith("eval/")))
            raise ConfigError(
                f"ckpt.best_metric_key names {self.key!r}, which the evaluation does not report; it reports: {names}"
            )
        value = float(metrics[self.key])
        if value != value or (self.value is not None and value <= self.value):  # NaN never wins
            return False
        self.value, self.step = value, step
        return True

    def record(self, model_dir: Path) -> None:
        """Write best_metric.json beside the exported model."""
        (model_dir / "best_metric.json").write_text(
            json.dumps({"key": self.key, "value": self.value, "step": self.step}, indent=2) + "\n"
        )

    def state(self) -> dict[str, Any]:
        return {"value": self.value, "step": self.step}

    def load_state(self, state: dict[str, Any] | None) -> None:
        if state:
            self.value, self.step = state.get("value"), state.get("step")
