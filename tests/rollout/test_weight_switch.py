"""Partial rollouts: weight updates that land between two decoding steps of a generation in progress
(openrlhf/rollout/weight_switch.py), in threads, in the HF engine, and in an HF engine Ray actor."""

from __future__ import annotations

import threading
import time

import torch
from safetensors.torch import load_file

from openrlhf.models.loading import load_model
from openrlhf.rollout.base import SamplingParams
from openrlhf.rollout.hf_engine import HFRolloutEngine
from openrlhf.rollout.weight_switch import WeightSwitch

from .helpers import PROMPTS, chat_request, teacher_forced_log_probs


def _in_thread(fn):
    box = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_an_update_during_a_generation_runs_at_its_next_safe_point():
    switch = WeightSwitch()
    log = []
    with switch.generating():
        thread, box = _in_thread(lambda: switch.apply(lambda: log.append("update") or 7))
        time.sleep(0.2)
        assert log == [] and thread.is_alive()  # waits for the generating thread
        log.append("step 1")
        assert switch.safe_point() == 1
        log.append("step 2")
        thread.join(5)
    assert log == ["step 1", "update", "step 2"] and box["result"] == 7 and switch.switches == 1


def test_an_update_handed_over_after_the_last_step_runs_before_the_generation_ends():
    switch = WeightSwitch()
    ran = []
    with switch.generating():
        thread, _ = _in_thread(lambda: switch.apply(lambda: ran.append(threading.current_thread().name)))
        time.sleep(0.2)
    thread.join(5)
    assert ran == [threading.main_thread().name] and not thread.is_alive()


def test_idle_updates_run_in_the_caller_and_a_generation_waits_for_them():
    switch = WeightSwitch()
    started = threading.Event()
    release = threading.Event()

    def slow_update():
        started.set()
        release.wait(5)
        return "done"

    updater, box = _in_thread(lambda: switch.apply(slow_update))
    started.wait(5)
    entered = []
    generator, _ = _in_thread(lambda: switch.generating().__enter__() or entered.append(True))
    time.sleep(0.2)
    assert entered == []  # the generation waits for the update running outside it
    release.set()
    updater.join(5)
    generator.join(5)
    assert box["result"] == "done" and entered == [True] and switch.switches == 1


def test_a_failing_update_is_raised_in_the_callers_thread_and_not_counted():
    switch = WeightSwitch()

    def bad():
        raise ValueError("shape mismatch for lm_head.weight")

    with switch.generating():
        thread, box = _in_thread(lambda: switch.apply(bad))
        time.sleep(0.1)
        switch.safe_point()
        thread.join(5)
    assert isinstance(box["error"], ValueError) and switch.switches == 0


# ----------------------------------------------------------------------------- the HF engine


class SlowSteps:
    """Slows each decoding step of ``engine`` (its safe point) so a test can hand an update over mid-way."""

    def __init__(self, engine: HFRolloutEngine, seconds: float) -> None:
        self.steps = 0
        original = engine._switch.safe_point

        def slow() -> int:
            self.steps += 1
            time.sleep(seconds)
            return original()

        engine._switch.safe_point = slow


def test_hf_engine_update_lands_mid_response_and_each_token_keeps_its_sampler_logprob(tiny_lm_path, updated_lm_path):
    """One response of 24 tokens; new weights handed over after about 6 steps. Tokens before the recorded switch
    s carry the old model's log-probs; from s on, the new weights' with the key/value cache the old weights made
    for the earlier positions (what the engine's generate continued with)."""
    engine = HFRolloutEngine(str(tiny_lm_path), generate_batch_size=4, num_threads=1, seed=0)
    request = chat_request(engine.tokenizer, PROMPTS[0])
    slow = SlowSteps(engine, 0.02)
    params = SamplingParams(n=1, max_new_tokens=24, seed=3)
    thread, box = _in_thread(lambda: engine.generate([request], params))
    while slow.steps < 6:
        time.sleep(0.005)
    new_weights = load_file(str(updated_lm_path / "model.safetensors"))
    assert engine.update_weights(new_weights) > 0  # returns once applied at a safe point
    thread.join(30)
    out = box["result"][0][0]
    assert len(out.weight_switches) == 1
    s = out.weight_switches[0]
    assert 6 <= s < len(out.output_token_ids), (s, len(out.output_token_ids))

    old, new = load_model(str(tiny_lm_path)), load_model(str(updated_lm_path))
    prompt, ids = list(out.prompt_token_ids), list(out.output_token_ids)
    got = torch.tensor(out.log_probs)
    torch.testing.assert_close(got[:s], teacher_forced_log_probs(old, prompt, ids[:s]), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        prefix = torch.tensor([prompt + ids[: s - 1]])
        cache = old(input_ids=prefix, use_cache=True).past_key_values  # positions before token s-1's
        rest = torch.tensor([ids[s - 1 : -1]])
        mask = torch.ones(1, prefix.shape[1] + rest.shape[1], dtype=torch.long)
        logits = new(input_ids=rest, past_key_values=cache, attention_mask=mask, use_cache=True).logits[0].float()
    expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[s:])[:, None]).squeeze(-1)
    torch.testing.assert_close(got[s:], expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got[s:], teacher_forced_log_probs(old, prompt, ids)[s:], atol=1e-3)
    assert engine._switch.switches == 1


def test_hf_engine_actor_takes_a_weight_update_while_it_streams(ray_local, tiny_lm_path, updated_lm_path):
    """The Ray actor as partial rollouts run it (max_concurrency=2): the update is called while generate_stream is
    running and lands in it; responses finished before it record no switch, the others one."""
    from openrlhf.rollout.hf_engine import hf_rollout_actor_class

    actor = (
        hf_rollout_actor_class()
        .options(max_concurrency=2, num_cpus=1)
        .remote(str(tiny_lm_path), generate_batch_size=2, num_threads=1, seed=0)
    )
    tok = HFRolloutEngine(str(tiny_lm_path), generate_batch_size=2, num_threads=1).tokenizer
    requests = [chat_request(tok, text) for text in PROMPTS[:4]]
    weights = ray_local.put(load_file(str(updated_lm_path / "model.safetensors")))
    stream = actor.generate_stream.options(num_returns="streaming").remote(
        requests, SamplingParams(n=2, max_new_tokens=96, seed=5, temperature=1.0)
    )
    pieces = [ray_local.get(next(stream))]  # the first prompt's group is done: the rest is generating
    update = actor.update_weights.remote(weights)
    pieces += [ray_local.get(ref) for ref in stream]
    assert ray_local.get(update) > 0
    switches = {index: [o.weight_switches for o in outs] for piece in pieces for index, outs in piece}
    assert sorted(switches) == [0, 1, 2, 3]
    assert switches[0] == [[], []]
    assert any(sw for index in (1, 2, 3) for sw in switches[index]), switches
    ray_local.kill(actor)
