"""``--train.agent_func_path``: OpenRLHF's own agent file (tests/fixtures/openrlhf_examples/agent_func.py, unchanged)
drives multi-turn rollouts in a training run, from the command line and in async mode on Ray engines.

The token-level checks (the conversation kept token for token, the environment's tokens masked) are in
tests/rollout/test_agent_rollout.py; here the whole step runs: episodes -> experience -> GRPO -> update."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from openrlhf.rollout.base import GenerationOutput
from openrlhf.trainer.experience_maker import Rollout, build_experience

from .helpers import REPO, read_metrics, run_training, small_run_args, with_reward_func

AGENT_FUNC = Path(__file__).resolve().parents[1] / "fixtures" / "openrlhf_examples" / "agent_func.py"
ONE_RANK_HYBRID = ("--actor.num_gpus_per_node", "1", "--train.colocate_all", "true")


def test_openrlhf_agent_func_trains_two_steps_from_the_cli(task, tmp_path):
    out = tmp_path / "run"
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    args = small_run_args(task, out, "--train.agent_func_path", str(AGENT_FUNC), *ONE_RANK_HYBRID)
    proc = subprocess.run(
        [sys.executable, "-m", "openrlhf.cli.train", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "step_idx: " in proc.stdout  # the agent file's own print, from its step()
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert 2.0 <= row["reward_log/agent_turns"] <= 4.0  # 1-3 "INCORRECT" turns, then the last one
        assert 0.0 <= row["reward/mean"] <= 1.0 and "reward_log/dummy_scores" in row
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2


def test_agent_runs_async_on_ray_engines(ray_cluster, task, tmp_path):
    out = tmp_path / "async"
    args = small_run_args(
        task, out, "--train.agent_func_path", str(AGENT_FUNC), "--train.async_enable", "true", steps=2
    )
    run_training(args)
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["async/staleness"] >= 0 and r["reward_log/agent_turns"] >= 2.0 for r in rows)


def test_environment_tokens_are_out_of_the_loss_mask(task):
    """build_experience takes an episode's own prompt ids and its loss_mask as the response mask."""
    from openrlhf.data.sample import Sample
    from openrlhf.rollout.base import GenerationRequest
    from openrlhf.rollout.prompt_encoder import EncodedPrompt

    prompt = EncodedPrompt(Sample(messages=[], label="1"), GenerationRequest("p", [5, 6, 7]))
    episode = GenerationOutput([5, 6, 7, 8], [10, 11, 20, 21, 12], "", [-1.0, -2.0, 0.0, 0.0, -3.0], "stop")
    episode.loss_mask = [1, 1, 0, 0, 1]
    plain = GenerationOutput([5, 6, 7], [30, 31], "", [-1.0, -1.0], "stop")
    exp = build_experience(Rollout([prompt], [episode, plain], 2), pad_token_id=0)
    assert exp.sequences.tolist() == [[5, 6, 7, 8, 10, 11, 20, 21, 12], [0, 5, 6, 7, 30, 31, 0, 0, 0]]
    assert exp.response_mask.tolist() == [[1, 1, 0, 0, 1], [1, 1, 0, 0, 0]]


def test_builtin_tools_run_through_the_trainer_and_are_scored_by_the_reward_source(task, tmp_path):
    """``rollout.tools``: episodes with the built-in calculator, scored by the run's reward function on the whole
    response; the held-out tool-call rate is in the summary."""
    out = tmp_path / "tools"
    args = small_run_args(
        task,
        out,
        *with_reward_func(task),
        "--rollout.tools",
        "[calculator]",
        "--rollout.max_turns",
        "2",
        *ONE_RANK_HYBRID,
    )
    summary = run_training(args)
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(0.0 <= r["reward_log/tool_call_rate"] <= 1.0 and r["reward/mean"] > 0.0 for r in rows)
    assert 0.0 <= summary["heldout_tool_call_rate_after"] <= 1.0


def test_the_reward_server_scores_a_tool_episodes_final_answer(tmp_path):
    """The real reward server (default math recipe's accuracy, tools recipe) on loopback: an episode that called
    the calculator is scored on its final turn, not cut at the end of its first turn (the server cuts a response
    at its first <|im_end|>)."""
    from openrlhf.rollout.agent_rollout import Episode
    from openrlhf.trainer.agent_episodes import score_final_turns
    from openrlhf.trainer.local_reward_server import LocalRewardServer
    from openrlhf.trainer.reward_client import RemoteRewardClient
    from openrlhf.utils.tool_protocol import tool_call_text, tool_response_turn

    prompt = "<|im_start|>user\nWhat is 123 * 456?<|im_end|>\n<|im_start|>assistant\n"
    call = tool_call_text("calculator", {"expression": "123 * 456"}) + "<|im_end|>"
    texts = {
        "tool_then_right": [prompt, call, tool_response_turn(["56088"]), "<answer>56088</answer><|im_end|>"],
        "tool_then_wrong": [prompt, call, tool_response_turn(["56088"]), "<answer>56000</answer><|im_end|>"],
        "direct_right": [prompt, "<answer>56088</answer><|im_end|>"],
    }
    pieces = {}  # each text piece as one "token", so the episode's ranges are the turns
    episodes = []
    for parts in texts.values():
        tokens = [pieces.setdefault(part, len(pieces)) for part in parts]
        actions = [(i, i + 1) for i in range(1, len(parts), 2)]
        episodes.append(Episode(tokens, actions, [0.0] * len(tokens), 0.0, 0.0, False, {}))
    by_id = {token: part for part, token in pieces.items()}
    recipes = REPO / "configs" / "reward_recipes_tools.yaml"
    with LocalRewardServer(str(recipes), log_dir=tmp_path) as server:
        client = RemoteRewardClient(server.url)
        try:
            result = score_final_turns(client, lambda ids: "".join(by_id[i] for i in ids), episodes, ["56088"], 3)
        finally:
            client.close()
    assert result.rewards == [1.0, 0.0, 1.0]
