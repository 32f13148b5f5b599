"""Multi-turn episodes (openrlhf/rollout/agent_rollout.py) on the real HF engine with the tiny LM: OpenRLHF's own
agent file runs unchanged, the conversation is kept token for token, and the environment's tokens are masked."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from openrlhf.rollout.agent_rollout import AgentFileError, load_agent_executor, run_episodes
from openrlhf.rollout.base import GenerationRequest, SamplingParams
from openrlhf.rollout.hf_engine import HFRolloutEngine
from openrlhf.utils.actor_calls import InDriverHandle
from openrlhf.utils.agent import AgentError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openrlhf_examples"

# An environment with a known transcript: two tool answers, then done with reward 1 when "7" was said.
SCRIPTED_AGENT = """
import torch
from openrlhf.utils.agent import AgentInstanceBase, MultiTurnAgentExecutor

FEEDBACK = ["\\nTool: result 12\\nAssistant:", "\\nTool: result 345 <|endoftext|>\\nAssistant:"]


class AgentInstance(AgentInstanceBase):
    def __init__(self, *args, **kwargs):
        self.turn = 0

    async def reset(self, states, **kwargs):
        return {"observation": states["observation"] + " Go."}

    async def step(self, states, **kwargs):
        self.turn += 1
        done = self.turn == 3
        return {
            "rewards": torch.tensor(float(done)),
            "scores": torch.tensor(0.5),
            "environment_feedback": "" if done else FEEDBACK[self.turn - 1],
            "done": done,
            "extra_logs": {"turn": float(self.turn)},
        }


class AgentExecutor(MultiTurnAgentExecutor):
    def __init__(self):
        super().__init__(AgentInstance)
"""


@pytest.fixture(scope="module")
def engine(tiny_lm_path):
    return HFRolloutEngine(str(tiny_lm_path), generate_batch_size=8, num_threads=1, seed=0)


def _generate_batch(engine):
    handle = InDriverHandle(engine)

    def generate_batch(requests, params):
        return [group[0] for group in handle.generate.remote(requests, params).result()]

    return generate_batch


def test_openrlhf_agent_file_runs_unchanged_and_masks_the_environment(engine, tmp_path):
    agent = tmp_path / "scripted_agent.py"
    agent.write_text(SCRIPTED_AGENT)
    executor = load_agent_executor(agent)
    tok = engine.tokenizer
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=7)
    prompts = [("Question: 3 + 4 =", "7"), ("Question: 5 - 1 =", "4")]
    result = run_episodes(executor, _generate_batch(engine), tok, prompts, params, max_length=200)
    assert [len(group) for group in result.episodes] == [3, 3]
    feedback = [tok("\nTool: result 12\nAssistant:", add_special_tokens=False)["input_ids"]]
    feedback.append(tok("\nTool: result 345 <|endoftext|>\nAssistant:", add_special_tokens=False)["input_ids"])
    for (text, _), group in zip(prompts, result.episodes, strict=True):
        for episode in group:
            assert len(episode.action_ranges) == 3 and episode.reward == 1.0 and episode.score == 0.5
            prompt_ids = tok(text + " Go.", add_special_tokens=False)["input_ids"]
            out = episode.generation_output(lambda ids: tok.decode(ids))
            assert out.prompt_token_ids == prompt_ids
            # the environment's tokens are exactly its feedback, tokenised alone, and masked out
            gaps = [(episode.action_ranges[k][1], episode.action_ranges[k + 1][0]) for k in range(2)]
            for (a, b), ids in zip(gaps, feedback, strict=True):
                assert episode.tokens[a:b] == ids
            start = len(prompt_ids)
            for position, (token, masked) in enumerate(zip(out.output_token_ids, out.loss_mask, strict=True)):
                in_action = any(a <= start + position < b for a, b in episode.action_ranges)
                assert masked == int(in_action), position
                assert token == episode.tokens[start + position]
            # sampler log-probs on the actions, 0 on the environment's tokens
            assert all(lp < 0 for lp, m in zip(out.log_probs, out.loss_mask, strict=True) if m)
            assert all(lp == 0 for lp, m in zip(out.log_probs, out.loss_mask, strict=True) if not m)
    assert result.turns == 18


def test_each_turn_is_what_the_engine_generates_for_the_conversation_so_far(engine, tmp_path):
    """Greedy: the episode's actions equal the engine's own greedy answer to each conversation prefix."""
    agent = tmp_path / "scripted_agent.py"
    agent.write_text(SCRIPTED_AGENT)
    tok = engine.tokenizer
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=6, seed=0)
    episode = run_episodes(
        load_agent_executor(agent), _generate_batch(engine), tok, [("Question: 2 + 2 =", "4")], params, 300
    ).episodes[0][0]
    for a, b in episode.action_ranges:
        alone = _generate_batch(engine)(
            [GenerationRequest("", episode.tokens[:a])],
            SamplingParams(n=1, temperature=0.0, max_new_tokens=6, seed=0),
        )[0]
        assert episode.tokens[a:b] == alone.output_token_ids


def test_openrlhf_example_agent_file_loads_and_runs(engine):
    executor = load_agent_executor(FIXTURES / "agent_func.py")
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=3)
    result = run_episodes(executor, _generate_batch(engine), engine.tokenizer, [("Hi", "x")], params, 120)
    for episode in result.episodes[0]:
        assert 2 <= len(episode.action_ranges) <= 4  # its environment ends after 1-3 "INCORRECT" answers
        assert episode.reward in (0.0, 1.0)


def test_a_bad_agent_file_is_named(tmp_path):
    missing = tmp_path / "nope.py"
    with pytest.raises(AgentFileError, match="nope.py is not a Python file"):
        load_agent_executor(missing)
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")
    with pytest.raises(AgentFileError, match=r"broken.py failed to import: ModuleNotFoundError"):
        load_agent_executor(broken)
    empty = tmp_path / "empty.py"
    empty.write_text(textwrap.dedent("x = 1\n"))
    with pytest.raises(AgentFileError, match="must define a class AgentExecutor"):
        load_agent_executor(empty)


def test_openrlhf_vlm_agent_is_refused_with_a_message_on_its_first_image(engine):
    """OpenRLHF's vlm_multiturn_agent.py loads; images from an environment are not supported yet, and the episode
    says so when its environment first returns one (its second step) instead of training on a broken sequence."""
    executor = load_agent_executor(FIXTURES / "vlm_multiturn_agent.py")
    params = SamplingParams(n=1, temperature=1.0, max_new_tokens=4, seed=0)
    with pytest.raises(AgentError, match="environment_images: images from the environment"):
        run_episodes(executor, _generate_batch(engine), engine.tokenizer, [("Hi", "x")], params, 400)


def test_an_environment_that_never_answers_meets_the_run_deadline(engine, tmp_path):
    from openrlhf.utils.actor_calls import CALL_DEADLINE, CallTimeout

    agent = tmp_path / "hung_agent.py"
    agent.write_text(
        SCRIPTED_AGENT.replace(
            "        self.turn += 1\n", "        import asyncio\n        await asyncio.sleep(3600)\n"
        )
    )
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=4, seed=0)
    saved, CALL_DEADLINE.seconds = CALL_DEADLINE.seconds, 1.0
    try:
        with pytest.raises(CallTimeout, match=r"2 agent episodes did not finish within 1 s"):
            run_episodes(
                load_agent_executor(agent), _generate_batch(engine), engine.tokenizer, [("Hi", "x")], params, 64
            )
    finally:
        CALL_DEADLINE.seconds = saved
