"""Groups scored as they finish while the rest generate (openrlhf/trainer/streamed_rollout.py), with real HF
engines on the tiny LM (in this process, as the in-driver layout calls them), a real ``reward_func`` file and
the real reward service on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from openrlhf_helpers import generate

from openrlhf.config import RewardConfig
from openrlhf.config_loading import build_config
from openrlhf.data.loader import load_samples
from openrlhf.data.synthetic import write_arithmetic_task
from openrlhf.rollout.hf_engine import HFRolloutEngine
from openrlhf.rollout.prompt_encoder import PromptEncoder
from openrlhf.trainer.experience_maker import sampling_params, score_groups
from openrlhf.trainer.local_reward_server import open_reward_source
from openrlhf.trainer.reward_client import FileRewardFunction, RewardFunctionError
from openrlhf.trainer.streamed_rollout import generate_and_score
from openrlhf.utils.actor_calls import InDriverHandle

SMALL_CONFIG = str(Path(__file__).with_name("small_recipes.yaml"))  # math recipe, 1 worker

# Per-sample rewards, plus a group-level one (the group's best length), which streaming must not change either;
# each call is logged with its size and the time it started, and sleeps as a slow judge would.
SLOW_REWARD = """
import json, os, time

def reward_func(queries, prompts, labels, **kw):
    start = time.perf_counter()
    time.sleep(float(os.environ.get("SLOW_REWARD_SECONDS", "0")))
    if os.environ.get("SLOW_REWARD_FAIL_AT") == str(len(open(os.environ["SLOW_REWARD_LOG"]).readlines())):
        raise RuntimeError("judge down")
    with open(os.environ["SLOW_REWARD_LOG"], "a") as log:
        log.write(json.dumps({"size": len(queries), "start": start}) + "\\n")
    lengths = [len(q) - len(p) for q, p in zip(queries, prompts)]
    best = {}
    for prompt, length in zip(prompts, lengths):
        best[prompt] = max(best.get(prompt, 0), length)
    rewards = [length / best[p] if best[p] else 0.0 for p, length in zip(prompts, lengths)]
    accuracy = [float(str(label) in q[len(p):]) for q, p, label in zip(queries, prompts, labels)]
    return {"rewards": rewards, "scores": accuracy, "components": {"accuracy": accuracy},
            "extra_logs": {"mean_length": sum(lengths) / len(lengths)}}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_lm_path):
    root = tmp_path_factory.mktemp("streamed")
    paths = write_arithmetic_task(root, 12, 0, 0)
    cfg = build_config(
        {
            "actor": {"model_name_or_path": str(tiny_lm_path)},
            "data": {"train_paths": [str(paths["train"])]},
            "rollout": {"n_samples_per_prompt": 3, "max_new_tokens": 12},
            "train": {"output_dir": str(root / "out")},
        }
    )
    encoder = PromptEncoder(cfg)
    samples = load_samples([str(paths["train"])], cfg.data).samples[:6]
    prompts = [encoder.encode(s) for s in samples]
    # 6 prompts x 3 samples over 2 engines: 9 rows each, chunks of 4 rows -> groups finish over 3 chunks each
    engines = [
        InDriverHandle(HFRolloutEngine(str(tiny_lm_path), generate_batch_size=4, num_threads=1, seed=0))
        for _ in range(2)
    ]
    reward_file = root / "slow_reward.py"
    reward_file.write_text(SLOW_REWARD)
    return {"cfg": cfg, "encoder": encoder, "prompts": prompts, "engines": engines, "reward_file": reward_file}


@pytest.fixture
def reward_log(tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    log.write_text("")
    monkeypatch.setenv("SLOW_REWARD_LOG", str(log))
    return log


def _whole_batch(setup, source, outputs):
    n = setup["cfg"].rollout.n_samples_per_prompt
    groups = [outputs[k * n : (k + 1) * n] for k in range(len(setup["prompts"]))]
    return score_groups(source, setup["encoder"], setup["prompts"], groups)


def test_reward_func_scores_groups_while_the_rest_generate(setup, reward_log, monkeypatch):
    """The engines finish groups over several chunks; each piece is scored (0.3 s, a slow judge) while later
    chunks generate, so most scoring time hides behind generation; the result equals generating everything
    and scoring the batch at once, group-level rewards and weighted batch logs included."""
    monkeypatch.setenv("SLOW_REWARD_SECONDS", "0.3")
    source = FileRewardFunction(setup["reward_file"])
    params = sampling_params(setup["cfg"], seed=7)
    scored = generate_and_score(setup["engines"], setup["prompts"], params, source, setup["encoder"])
    calls = [json.loads(line) for line in reward_log.read_text().splitlines()]
    assert len(calls) >= 4 and all(c["size"] % 3 == 0 for c in calls)  # whole groups only
    assert sum(c["size"] for c in calls) == 18
    generation_end = scored.generation_window[1]
    assert sum(1 for c in calls if c["start"] < generation_end) >= 2, (calls, scored.generation_window)
    assert scored.reward_wait < scored.reward_busy - 0.25

    outputs = generate(setup["engines"], setup["prompts"], params)
    assert [o.output_token_ids for o in scored.rollout.outputs] == [o.output_token_ids for o in outputs]
    monkeypatch.setenv("SLOW_REWARD_SECONDS", "0")
    whole = _whole_batch(setup, source, outputs)
    assert scored.rollout.rewards.tolist() == pytest.approx(whole.rewards)
    assert scored.rollout.scores.tolist() == whole.scores
    assert scored.rollout.components == whole.components
    assert scored.rollout.extra_logs["mean_length"] == pytest.approx(whole.extra_logs["mean_length"])


def test_a_failing_piece_stops_the_rollout_with_the_reward_error(setup, reward_log, monkeypatch):
    monkeypatch.setenv("SLOW_REWARD_FAIL_AT", "1")  # the second call raises
    source = FileRewardFunction(setup["reward_file"])
    params = sampling_params(setup["cfg"], seed=8)
    with pytest.raises(RewardFunctionError, match=r"slow_reward.py: reward_func raised RuntimeError\('judge down'\)"):
        generate_and_score(setup["engines"], setup["prompts"], params, source, setup["encoder"])
    # the abandoned generation let go of the engines (their generation lock): they generate again at once
    monkeypatch.delenv("SLOW_REWARD_FAIL_AT")
    again = generate_and_score(setup["engines"], setup["prompts"], params, source, setup["encoder"])
    assert len(again.rollout.outputs) == 18


def test_the_reward_service_scores_streamed_pieces_as_the_whole_batch(setup, tmp_path):
    """The real reward service (python -m remote_rm.cli on loopback, math recipe): per-sample rewards,
    components and sample-weighted batch logs equal one call with the whole batch."""
    reward_cfg = RewardConfig(launch_local_server=True, server_config=SMALL_CONFIG)
    params = sampling_params(setup["cfg"], seed=9)
    with open_reward_source(reward_cfg, tmp_path) as source:
        t = time.perf_counter()
        scored = generate_and_score(setup["engines"], setup["prompts"], params, source, setup["encoder"])
        assert len(scored.reward_windows) >= 4 and scored.reward_windows[0][0] < scored.generation_window[1]
        whole = _whole_batch(setup, source, scored.rollout.outputs)
        assert time.perf_counter() - t < 120
    assert scored.rollout.rewards.tolist() == pytest.approx(whole.rewards)
    assert scored.rollout.scores.tolist() == pytest.approx(whole.scores)
    assert scored.rollout.components.keys() == whole.components.keys()
    for name, values in whole.components.items():
        torch.testing.assert_close(torch.tensor(scored.rollout.components[name]), torch.tensor(values), equal_nan=True)
    for name, value in whole.extra_logs.items():
        assert scored.rollout.extra_logs[name] == pytest.approx(value), name
