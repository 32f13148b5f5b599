"""The vLLM engine's CPU-testable pieces; vLLM itself cannot run here (no GPU, no CPU wheel)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from openrlhf.models.loading import load_model, load_tokenizer
from openrlhf.rollout.base import GenerationRequest, SamplingParams
from openrlhf.rollout.dispatch import distribute_requests, engine_params
from openrlhf.rollout.vllm_engine import (
    WORKER_EXTENSION,
    VLLMRolloutEngine,
    convert_request_output,
    executor_backend,
    ray_executor_env,
    truncation_changes_logprobs,
    vllm_available,
    vllm_engine_kwargs,
    vllm_prompt,
    vllm_sampling_kwargs,
)
from openrlhf.rollout.vllm_worker import WeightSyncWorkerExtension, pick_ipc_handles, worker_sync_rank
from openrlhf.rollout.weight_sync import (
    broadcast_named_tensors,
    create_sync_group_sender,
    cuda_ipc_handles,
    find_free_port,
    load_named_tensors,
    weight_meta,
)

from .helpers import chat_request, random_image, run_ranks

# ----------------------------------------------------------------------------- spreading prompts


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


def test_each_engine_gets_its_own_seed():
    params = SamplingParams(seed=10)
    assert [engine_params(params, i).seed for i in range(3)] == [10, 11, 12]
    assert engine_params(SamplingParams(seed=None), 2).seed is None


# ----------------------------------------------------------------------------- requests in, outputs out


def test_sampling_params_translate_with_per_request_seeds():
    params = SamplingParams(n=4, temperature=0.7, top_p=0.9, top_k=-1, max_new_tokens=32, seed=5)
    kwargs = vllm_sampling_kwargs(params, request_index=3)
    assert kwargs == {
        "n": 4,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": -1,
        "max_tokens": 32,
        "seed": 8,
        "logprobs": 0,
        "detokenize": False,
        "skip_special_tokens": False,
    }
    assert vllm_sampling_kwargs(SamplingParams(seed=None), 3)["seed"] is None
    assert vllm_sampling_kwargs(SamplingParams(), stop_token_ids=[7, 9])["stop_token_ids"] == [7, 9]
    banned = vllm_sampling_kwargs(SamplingParams(), banned_token_ids=[5, 6])["logit_bias"]
    assert banned == {5: -100.0, 6: -100.0}
    with pytest.raises(ValueError, match="top_k=0"):
        vllm_sampling_kwargs(SamplingParams(top_k=0))


def test_truncation_is_flagged():
    assert not truncation_changes_logprobs(SamplingParams(temperature=1.0))
    assert truncation_changes_logprobs(SamplingParams(top_p=0.9))
    assert truncation_changes_logprobs(SamplingParams(top_k=50))
    assert not truncation_changes_logprobs(SamplingParams(temperature=0.0, top_k=50))


def test_prompts_carry_token_ids_or_text_with_images_in_order(tiny_vlm_path):
    tok = load_tokenizer(tiny_vlm_path)
    images = [random_image(0), random_image(1)]
    text_row = chat_request(tok, "hello")
    image_row = chat_request(tok, "compare", images)
    assert vllm_prompt(text_row) == {"prompt_token_ids": text_row.prompt_token_ids}
    prompt = vllm_prompt(image_row)
    assert prompt["prompt"] == image_row.prompt_text
    assert prompt["multi_modal_data"]["image"] == images  # same objects, same order
    with pytest.raises(ValueError, match="request 4: empty prompt_token_ids"):
        vllm_prompt(GenerationRequest("x", []), 4)
    with pytest.raises(ValueError, match="request 2: an image row needs prompt_text"):
        vllm_prompt(GenerationRequest("", [1], images=images), 2)


# Mirrors of vllm.outputs.RequestOutput / CompletionOutput and vllm.logprobs.Logprob (fields used here).
@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)


def completion(index, token_ids, finish_reason):
    logprobs = [{tok: Logprob(-0.5 - pos, rank=1), 7: Logprob(-9.0, rank=2)} for pos, tok in enumerate(token_ids)]
    return CompletionOutput(index, "", token_ids, None, logprobs, finish_reason)


def test_request_outputs_convert_like_the_hf_engine(tiny_lm_path):
    tok = load_tokenizer(tiny_lm_path)
    eos = tok.eos_token_id
    body = tok("<think>3+4</think><answer>7</answer>", add_special_tokens=False)["input_ids"]
    request_output = RequestOutput(
        "0",
        None,
        [1, 2, 3],
        [completion(1, body[:3], "length"), completion(0, body + [eos], "stop")],
    )
    first, second = convert_request_output(request_output, tok, [eos])
    assert first.output_token_ids == body + [eos] and first.finish_reason == "stop"
    assert first.text == "<think>3+4</think><answer>7</answer>"
    assert first.logprobs == [-0.5 - i for i in range(len(body) + 1)]
    assert first.prompt_token_ids == [1, 2, 3]
    assert second.output_token_ids == body[:3] and second.finish_reason == "length"

    no_logprobs = RequestOutput("1", None, [1], [CompletionOutput(0, "", [5], None, None, "length")])
    with pytest.raises(ValueError, match="logprobs=0"):
        convert_request_output(no_logprobs, tok, [eos])


# ----------------------------------------------------------------------------- engine construction


def test_engine_kwargs_for_text_and_vision_models():
    text = vllm_engine_kwargs("/ckpt", tensor_parallel_size=2, max_model_len=1088, seed=3)
    assert text["worker_extension_cls"] == WORKER_EXTENSION
    assert text["logprobs_mode"] == "processed_logprobs"
    assert text["distributed_executor_backend"] == "ray" and executor_backend(1) == "uni"
    assert text["max_model_len"] == 1088 and "limit_mm_per_prompt" not in text
    vision = vllm_engine_kwargs("/ckpt", multimodal=True, min_pixels=3136, max_pixels=12845056)
    assert vision["mm_processor_kwargs"] == {"min_pixels": 3136, "max_pixels": 12845056}
    assert vision["limit_mm_per_prompt"] == {"image": 8}
    with pytest.raises(ValueError, match="gpu_memory_utilization=1.5"):
        vllm_engine_kwargs("/ckpt", gpu_memory_utilization=1.5)
    module, name = WORKER_EXTENSION.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name) is WeightSyncWorkerExtension


def test_ray_executor_env_names_the_bundles():
    assert ray_executor_env(1, None, 1.0) == {"VLLM_ALLOW_INSECURE_SERIALIZATION": "1"}
    env = ray_executor_env(2, [4, 5], 0.5)
    assert env["VLLM_RAY_BUNDLE_INDICES"] == "4,5" and env["VLLM_RAY_PER_WORKER_GPUS"] == "0.5"
    with pytest.raises(ValueError, match="tensor_parallel_size=2 needs that many bundle indices"):
        ray_executor_env(2, [4], 1.0)


@pytest.mark.skipif(vllm_available(), reason="vLLM is installed here")
def test_engine_without_vllm_says_how_to_install_it(tiny_lm_path):
    with pytest.raises(ImportError, match=r'pip install "\.\[gpu\]"'):
        VLLMRolloutEngine(str(tiny_lm_path))


# ----------------------------------------------------------------------------- the worker extension


class VllmStyleModel:
    """vLLM's model interface as the extension uses it: ``load_weights(weights=[(hf_name, tensor)])``."""

    def __init__(self, hf_model):
        self.hf_model = hf_model

    def load_weights(self, weights):
        load_named_tensors(self.hf_model, weights)
        return {name for name, _ in weights}


class CpuWorker(WeightSyncWorkerExtension):
    """A worker as vLLM builds it (rank, device, model_runner) with the extension mixed in."""

    def __init__(self, rank, model):
        self.rank = rank
        self.device = torch.device("cpu")
        self.model_runner = SimpleNamespace(model=VllmStyleModel(model))


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
        for name, param in worker.model_runner.model.hf_model.named_parameters():
            assert torch.equal(param, expected[name]), name


def test_worker_object_store_and_shared_memory_paths(tiny_lm_path, updated_lm_path):
    policy = dict(load_model(updated_lm_path).named_parameters())
    worker = CpuWorker(0, load_model(tiny_lm_path))
    norm = "model.norm.weight"
    assert worker.load_named_weights([(norm, policy[norm].detach())]) == 1
    assert torch.equal(worker.model_runner.model.hf_model.get_parameter(norm), policy[norm])

    embed = "model.embed_tokens.weight"
    handles = {"cpu": cuda_ipc_handles({embed: policy[embed]})}
    assert worker.update_weights_from_ipc(handles) == 1
    assert torch.equal(worker.model_runner.model.hf_model.get_parameter(embed), policy[embed])
    with pytest.raises(KeyError, match="no handles for GPU GPU-1234"):
        pick_ipc_handles(handles, "GPU-1234")
    assert worker_sync_rank(5, 3) == 8


def test_worker_needs_a_group_before_receiving(tiny_lm_path):
    with pytest.raises(RuntimeError, match="init_weight_sync_group on the workers first"):
        CpuWorker(0, load_model(tiny_lm_path)).receive_weights([("model.norm.weight", "float32", [256])])
