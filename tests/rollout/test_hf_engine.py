"""The HF rollout engine on the tiny Qwen2 LM: outputs, sampler log-probs, determinism, eos, weight updates."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from openrlhf.rollout.base import GenerationRequest, SamplingParams
from openrlhf.rollout.hf_engine import HFRolloutEngine

from .helpers import PROMPTS, chat_request, checkpoint_with_generation_config, teacher_forced_log_probs


@pytest.fixture(scope="module")
def engine(tiny_lm_path):
    return HFRolloutEngine(str(tiny_lm_path), generate_batch_size=4, num_threads=1, seed=0)


@pytest.fixture(scope="module")
def requests_(engine):
    return [chat_request(engine.tokenizer, text) for text in PROMPTS[:3]]


def tokens(results):
    return [[o.output_token_ids for o in outs] for outs in results]


def test_outputs_per_request_with_n_samples(engine, requests_):
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=7)
    results = engine.generate(requests_, params)
    assert len(results) == len(requests_)
    for request, outs in zip(requests_, results, strict=True):
        assert len(outs) == 3
        for out in outs:
            assert out.prompt_token_ids == request.prompt_token_ids
            assert 1 <= len(out.output_token_ids) <= 12
            assert len(out.log_probs) == len(out.output_token_ids)
            assert all(lp <= 0.0 for lp in out.log_probs)
            assert out.finish_reason in ("stop", "length")
            assert out.text == engine.tokenizer.decode(out.output_token_ids, skip_special_tokens=True)
            assert engine.pad_id not in out.output_token_ids[:-1]
    # the n samples of a prompt are distinct draws
    assert len({tuple(o.output_token_ids) for o in results[0]}) > 1


@pytest.mark.parametrize(("temperature", "top_p", "top_k"), [(1.0, 1.0, -1), (0.7, 0.8, 20)])
def test_sampler_logprobs_are_untruncated_temperature_scaled(engine, requests_, temperature, top_p, top_k):
    """logp = log_softmax(logits / T)[token], recomputed by one full forward, whatever top-p/top-k cut."""
    params = SamplingParams(n=2, temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=10, seed=3)
    results = engine.generate(requests_, params)
    for outs in results:
        for out in outs:
            expected = teacher_forced_log_probs(engine.model, out.prompt_token_ids, out.output_token_ids, temperature)
            torch.testing.assert_close(torch.tensor(out.log_probs), expected, atol=1e-4, rtol=1e-4)


def test_top_k_one_and_greedy_pick_the_argmax(engine, requests_):
    greedy = engine.generate(requests_, SamplingParams(temperature=0.0, max_new_tokens=8))
    top1 = engine.generate(requests_, SamplingParams(temperature=1.0, top_k=1, max_new_tokens=8, seed=5))
    assert tokens(greedy) == tokens(top1)
    out = greedy[0][0]
    ids = torch.tensor([out.prompt_token_ids + out.output_token_ids])
    with torch.no_grad():
        logits = engine.model(input_ids=ids).logits[0]
    start = len(out.prompt_token_ids) - 1
    argmax = logits[start : start + len(out.output_token_ids)].argmax(-1).tolist()
    assert out.output_token_ids == argmax


def test_deterministic_given_the_seed(engine, requests_):
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=11)
    first, second = engine.generate(requests_, params), engine.generate(requests_, params)
    assert tokens(first) == tokens(second)
    assert [[o.log_probs for o in outs] for outs in first] == [[o.log_probs for o in outs] for outs in second]
    other = engine.generate(requests_, dataclasses.replace(params, seed=12))
    assert tokens(other) != tokens(first)


def test_seeded_call_leaves_the_global_rng_alone(engine, requests_):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    engine.generate(requests_[:1], SamplingParams(max_new_tokens=4, seed=1))
    assert torch.equal(torch.rand(3), expected)


def test_batches_smaller_than_the_request_list_keep_the_order(engine, requests_):
    """generate_batch_size=4 with 3 prompts x n=3 runs three batches; every output sits under its prompt."""
    results = engine.generate(requests_, SamplingParams(n=3, max_new_tokens=6, seed=2))
    for request, outs in zip(requests_, results, strict=True):
        assert all(o.prompt_token_ids == request.prompt_token_ids for o in outs)
        for out in outs:
            expected = teacher_forced_log_probs(engine.model, out.prompt_token_ids, out.output_token_ids)
            torch.testing.assert_close(torch.tensor(out.log_probs), expected, atol=1e-4, rtol=1e-4)


def test_stream_yields_each_group_once_after_the_chunk_that_finishes_it(engine, requests_):
    """3 prompts x n=3 in chunks of 4 rows: rows (0,0,0,1) (1,1,2,2) (2): prompt 0 is done after the first chunk,
    1 after the second, 2 after the third; the pieces hold generate()'s responses."""
    params = SamplingParams(n=3, max_new_tokens=6, seed=2)
    pieces = list(engine.generate_stream(requests_, params))
    assert [[index for index, _ in piece] for piece in pieces] == [[0], [1], [2]]
    streamed = [outs for piece in pieces for _, outs in piece]
    assert tokens(streamed) == tokens(engine.generate(requests_, params))


def test_stops_at_eos_and_reports_stop(engine, requests_, tiny_lm_path, tmp_path):
    """A checkpoint declaring a sampled token as eos: with the same seed, every response ends at its first occurrence."""
    params = SamplingParams(temperature=1.0, max_new_tokens=10, seed=5)
    free_run = engine.generate(requests_, params)
    # a token first produced mid-response (not at its start), so the cut is visible
    row, k = next(
        (r, k)
        for r, outs in enumerate(free_run)
        for k, tok in enumerate(outs[0].output_token_ids)
        if k >= 2 and tok not in outs[0].output_token_ids[:k]
    )
    stop_token = free_run[row][0].output_token_ids[k]
    stopping = HFRolloutEngine(
        str(checkpoint_with_generation_config(tiny_lm_path, tmp_path / "eos", [stop_token])), num_threads=1
    ).generate(requests_, params)
    for free, stopped in zip(free_run, stopping, strict=True):
        full = free[0].output_token_ids
        out = stopped[0]
        if stop_token in full:
            cut = full.index(stop_token) + 1
            assert out.output_token_ids == full[:cut]
            assert out.finish_reason == "stop"
        else:
            assert out.output_token_ids == full
            assert out.finish_reason == "length"
    assert stopping[row][0].output_token_ids == free_run[row][0].output_token_ids[: k + 1]


def test_checkpoint_sampling_defaults_are_ignored(engine, requests_, tiny_lm_path, tmp_path):
    """A generation_config.json with a repetition penalty and top-k changes nothing: the params are the sampler."""
    path = checkpoint_with_generation_config(
        tiny_lm_path,
        tmp_path / "defaults",
        repetition_penalty=3.0,
        top_k=2,
        top_p=0.5,
        min_p=0.5,
        suppress_tokens=[318],
        do_sample=False,
    )
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=8)
    other = HFRolloutEngine(str(path), generate_batch_size=4, num_threads=1).generate(requests_, params)
    assert tokens(other) == tokens(engine.generate(requests_, params))


def test_update_weights_changes_generation_to_the_new_policy(tiny_lm_path, updated_lm_path, requests_):
    from openrlhf.models.loading import load_model

    params = SamplingParams(temperature=0.0, max_new_tokens=10)
    engine = HFRolloutEngine(str(tiny_lm_path), num_threads=1)
    before = engine.generate(requests_, params)
    target = HFRolloutEngine(str(updated_lm_path), num_threads=1).generate(requests_, params)
    assert tokens(before) != tokens(target)

    # names as a DeepSpeed-wrapped model gives them (module. prefix); a tied lm_head follows its embedding
    new_state = {f"module.{k}": v for k, v in load_model(updated_lm_path).named_parameters()}
    assert engine.update_weights(new_state) == len(new_state)
    assert tokens(engine.generate(requests_, params)) == tokens(target)


def test_update_weights_rejects_unknown_names_and_shapes(engine):
    with pytest.raises(KeyError, match="model.layers.0.not_a_weight"):
        engine.update_weights({"model.layers.0.not_a_weight": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"model.norm.weight.*shape \(3,\)"):
        engine.update_weights([("model.norm.weight", torch.zeros(3))])


def test_bad_inputs_are_named(engine, requests_):
    with pytest.raises(ValueError, match=r"max_new_tokens=0.*top_p=1.5"):
        engine.generate(requests_, SamplingParams(top_p=1.5, max_new_tokens=0))
    with pytest.raises(ValueError, match="request 1: empty prompt_token_ids"):
        engine.generate([requests_[0], GenerationRequest("x", [])], SamplingParams())
    image_row = GenerationRequest(requests_[0].prompt_text, requests_[0].prompt_token_ids, images=[object()])
    with pytest.raises(ValueError, match="request 0: has 1 image.*text-only"):
        engine.generate([image_row], SamplingParams())
    with pytest.raises(RuntimeError, match="init_weight_sync_group first"):
        engine.receive_weights([("model.norm.weight", "float32", [256])])
