"""Contract tests: VLLMRolloutEngine's outputs and its streaming loop against the real vLLM 0.33.0 wheel.

vLLM's ``LLM`` cannot start without CUDA, so the engine runs over an ``LLM`` stand-in that answers with the
wheel's own ``RequestOutput`` / ``CompletionOutput`` / logprob classes, and whose request ids come from the
wheel's own code (``OfflineInferenceMixin._add_request``, ``InputProcessor.assign_request_id``, compiled from
its source). What cannot import here is checked from the wheel's source with ``ast``.
"""

from __future__ import annotations

import ast
import threading
import time
from types import SimpleNamespace

import pytest
import torch
from vllm_wheel import compiled_method, method_params, method_source, vllm_class_ast, vllm_module, vllm_source

from openrlhf.models.loading import load_tokenizer
from openrlhf.rollout.base import GenerationRequest, SamplingParams
from openrlhf.rollout.vllm_engine import VLLMRolloutEngine, convert_request_output, external_request_id
from openrlhf.rollout.weight_switch import WeightSwitch

pytestmark = pytest.mark.contract


def _completion(api, index, token_ids, finish_reason, flat=False):
    logprobs = api.logprobs.create_sample_logprobs(flat)
    for pos, tok in enumerate(token_ids):  # logprobs=0: only the sampled token, rank 1
        api.logprobs.append_logprobs_for_next_position(logprobs, [tok], [-0.5 - pos], [None], 1, 0)
    return api.outputs.CompletionOutput(index, "", token_ids, None, logprobs, finish_reason=finish_reason)


@pytest.mark.parametrize("flat", [False, True])
def test_real_request_outputs_convert_like_the_hf_engine(vllm_api, tiny_lm_path, flat):
    tok = load_tokenizer(tiny_lm_path)
    eos = tok.eos_token_id
    body = tok("<think>3+4</think><answer>7</answer>", add_special_tokens=False)["input_ids"]
    outputs = [_completion(vllm_api, 1, body[:3], "length", flat), _completion(vllm_api, 0, body + [eos], "stop", flat)]
    request_output = vllm_api.outputs.RequestOutput("0", None, [1, 2, 3], None, outputs, True)
    first, second = convert_request_output(request_output, tok, [eos], expected_prompt_ids=[1, 2, 3])
    assert first.output_token_ids == body + [eos] and first.finish_reason == "stop"
    assert first.text == "<think>3+4</think><answer>7</answer>"
    assert first.log_probs == [-0.5 - i for i in range(len(body) + 1)]
    assert second.output_token_ids == body[:3] and second.finish_reason == "length"
    with pytest.raises(ValueError, match="first difference at position 1"):
        convert_request_output(request_output, tok, [eos], expected_prompt_ids=[1, 5, 3])


def _engine_around(llm, vllm_api, tok) -> VLLMRolloutEngine:
    """A VLLMRolloutEngine over an LLM stand-in (no __init__: vllm.LLM cannot start here), with the real
    SamplingParams class of the wheel."""
    engine = object.__new__(VLLMRolloutEngine)
    engine.llm, engine._vllm, engine.tokenizer = (
        llm,
        SimpleNamespace(SamplingParams=vllm_api.sampling.SamplingParams),
        tok,
    )
    engine.eos_ids, engine.banned_ids, engine.image_pad_id = [tok.eos_token_id], [], None
    engine.enable_sleep, engine._asleep, engine._warned_truncation = False, False, False
    engine._switch, engine._prefix_cache_stale = WeightSwitch(), False
    return engine


def test_engine_generate_sends_token_prompts_with_real_sampling_params(vllm_api, tiny_lm_path):
    """VLLMRolloutEngine.generate against an LLM stand-in that answers with vLLM's own output classes."""
    tok = load_tokenizer(tiny_lm_path)
    eos = tok.eos_token_id
    calls = []

    class AnsweringLLM:
        def generate(self, prompts, sampling_params, *, use_tqdm=True):
            calls.append((prompts, sampling_params, use_tqdm))
            return [
                vllm_api.outputs.RequestOutput(
                    str(i),
                    None,
                    p["prompt_token_ids"],
                    None,
                    [_completion(vllm_api, j, [5, eos], "stop") for j in range(sp.n)],
                    True,
                )
                for i, (p, sp) in enumerate(zip(prompts, sampling_params, strict=True))
            ]

    engine = _engine_around(AnsweringLLM(), vllm_api, tok)
    requests = [GenerationRequest("", [1, 2, 3]), GenerationRequest("", [4, 5])]
    outputs = engine.generate(requests, SamplingParams(n=2, seed=7))
    prompts, sampling, use_tqdm = calls[0]
    assert prompts == [{"prompt_token_ids": [1, 2, 3]}, {"prompt_token_ids": [4, 5]}] and use_tqdm is False
    assert all(isinstance(sp, vllm_api.sampling.SamplingParams) and sp.n == 2 for sp in sampling)
    assert sampling[0].seed != sampling[1].seed and sampling[0].stop_token_ids == [eos]
    assert [[o.output_token_ids for o in outs] for outs in outputs] == [[[5, eos]] * 2] * 2
    assert [outs[0].prompt_token_ids for outs in outputs] == [[1, 2, 3], [4, 5]]


def test_engine_stream_yields_groups_as_vllm_finishes_them(vllm_api, tiny_lm_path):
    """VLLMRolloutEngine.generate_stream against an LLM stand-in whose request ids come from vLLM's own code:
    ``LLM._add_request`` numbers each request (``request_counter``) and calls ``llm_engine.add_request``, where
    ``InputProcessor.assign_request_id`` makes the internal id that ``enqueue`` returns; the outputs carry the
    external id (output_processor: ``RequestOutput(request_id=external_req_id)``). Requests finish out of order
    over several engine steps; a consumer that stops early aborts the rest by their internal ids."""
    assert "request_id=external_req_id" in vllm_source("v1/engine/output_processor.py")
    # generate() = enqueue()'s rendering and adding + the step loop the stream runs itself
    run_completion = method_source("entrypoints/common/offline.py", "OfflineInferenceMixin", "_run_completion")
    assert "self._add_completion_requests(" in run_completion and "return self._run_engine(" in run_completion
    assert "return self._add_completion_requests(" in method_source("entrypoints/llm.py", "LLM", "enqueue")
    run_engine = method_source("entrypoints/common/offline.py", "OfflineInferenceMixin", "_run_engine")
    assert "while self.llm_engine.has_unfinished_requests():" in run_engine
    assert "step_outputs = self.llm_engine.step()" in run_engine and "if output.finished:" in run_engine
    assert {"prompts", "sampling_params", "use_tqdm"} <= set(
        method_params(vllm_class_ast("entrypoints/llm.py", "LLM"), "enqueue")
    )
    llm_engine = vllm_class_ast("v1/engine/llm_engine.py", "LLMEngine")
    assert method_params(llm_engine, "abort_request") == ["self", "request_ids", "internal"]
    assert {"step", "has_unfinished_requests"} <= {n.name for n in llm_engine.body if isinstance(n, ast.FunctionDef)}

    utils, counter = vllm_module("vllm.utils"), vllm_module("vllm.utils.counter")
    assign_request_id = compiled_method(
        "v1/engine/input_processor.py",
        "InputProcessor",
        "assign_request_id",
        {"envs": SimpleNamespace(VLLM_DISABLE_REQUEST_ID_RANDOMIZATION=False), "random_uuid": utils.random_uuid},
    )
    add_request = compiled_method(
        "entrypoints/common/offline.py",
        "OfflineInferenceMixin",
        "_add_request",
        {"SamplingParams": vllm_api.sampling.SamplingParams, "RequestOutputKind": vllm_api.sampling.RequestOutputKind},
    )
    tok = load_tokenizer(tiny_lm_path)
    eos = tok.eos_token_id

    class Engine:
        """LLMEngine as the loop sees it: finishes request 2 at the first step, none at the second (an unfinished
        output of 0), 1 and 0 at the third."""

        def __init__(self) -> None:
            self.requests, self.aborted, self.calls = {}, [], []
            self.steps = [[(2, True)], [(0, False)], [(1, True), (0, True)]]

        def set_weight_version(self, version: str) -> None:
            self.calls.append(f"set_weight_version {version}")

        def add_request(self, request_id, prompt, params, lora_request=None, priority=0):
            request = SimpleNamespace(request_id=request_id, external_req_id=None, prompt=prompt, params=params)
            assign_request_id(request)
            self.requests[request.external_req_id] = request
            return request.request_id

        def has_unfinished_requests(self) -> bool:
            return bool(self.steps)

        def step(self):
            self.calls.append("step")
            done = self.steps.pop(0)
            return [
                vllm_api.outputs.RequestOutput(
                    str(k),
                    None,
                    self.requests[str(k)].prompt["prompt_token_ids"],
                    None,
                    [_completion(vllm_api, j, [5 + k, eos], "stop") for j in range(self.requests[str(k)].params.n)],
                    finished,
                )
                for k, finished in done
            ]

        def abort_request(self, request_ids, internal=False):
            self.aborted.append((list(request_ids), internal))

    class StreamingLLM:
        def __init__(self) -> None:
            self.request_counter = counter.Counter()
            self.llm_engine = Engine()

        def enqueue(self, prompts, sampling_params, *, use_tqdm=True):
            assert use_tqdm is False
            return [add_request(self, p, sp) for p, sp in zip(prompts, sampling_params, strict=True)]

        def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
            self.llm_engine.calls.append(method)
            return [len(args[0])] if args else [False]  # open/close_weight_reload take none

        def reset_prefix_cache(self, reset_running_requests=False, reset_connector=False):
            self.llm_engine.calls.append("reset_prefix_cache")
            return True

    def make_engine():
        return _engine_around(StreamingLLM(), vllm_api, tok)

    requests = [GenerationRequest("", [1, 2, 3]), GenerationRequest("", [4, 5]), GenerationRequest("", [6])]
    engine = make_engine()
    pieces = list(engine.generate_stream(requests, SamplingParams(n=2, seed=7)))
    assert [[index for index, _ in piece] for piece in pieces] == [[2], [1, 0]]
    by_index = {index: outs for piece in pieces for index, outs in piece}
    assert [[o.output_token_ids for o in by_index[i]] for i in range(3)] == [[[5 + i, eos]] * 2 for i in range(3)]
    assert [by_index[i][0].prompt_token_ids for i in range(3)] == [r.prompt_token_ids for r in requests]
    assert engine.llm.llm_engine.aborted == []
    internal = [r.request_id for r in engine.llm.llm_engine.requests.values()]
    assert all(rid != external_request_id(rid) for rid in internal)  # vLLM did add its suffix

    engine = make_engine()
    stream = engine.generate_stream(requests, SamplingParams(n=2, seed=7))
    next(stream)
    stream.close()  # the consumer stops (a reward failed): the rest is aborted by the ids enqueue returned
    internal = [r.request_id for r in engine.llm.llm_engine.requests.values()]
    assert engine.llm.llm_engine.aborted == [(internal, True)]

    # Partial rollouts: an update from another thread (the actor's second) while the stream runs lands before the
    # next engine step, is labelled for vLLM's weight-version spans, and the prefix cache is reset at the end.
    engine = make_engine()
    stream = engine.generate_stream(requests, SamplingParams(n=2, seed=7))
    next(stream)
    done = []
    updater = threading.Thread(target=lambda: done.append(engine.update_weights({"w": torch.zeros(3)})))
    updater.start()
    while not engine._switch._queued:
        time.sleep(0.01)
    list(stream)
    updater.join(5)
    assert done == [1]
    assert engine.llm.llm_engine.calls == [
        "step",
        "open_weight_reload",  # one whole update between these (the CPU build's layerwise reload)
        "load_named_weights",
        "close_weight_reload",
        "set_weight_version 1",
        "step",
        "step",
        "reset_prefix_cache",
    ]


def test_partial_rollout_switches_come_from_vllms_own_weight_version_spans(vllm_api, tiny_lm_path):
    """The wheel's real OutputProcessor fed EngineCoreOutputs as the engine core sends them, each step labelled
    with the version of that moment (``EngineCore._attach_weight_version``; our updates set it with
    ``llm_engine.set_weight_version``): a request of n=2 fanned out by the real ParentRequest; new weights from
    the 4th step on. The child still running then switches after 3 tokens; the one that ended at eos after 3
    tokens (before the switch) records none."""
    from copy import copy

    import numpy as np

    op = vllm_module("vllm.v1.engine.output_processor")
    core = vllm_module("vllm.v1.engine")
    parallel = vllm_module("vllm.v1.engine.parallel_sampling")
    lists = vllm_module("vllm.v1.outputs").LogprobsLists
    assert "eco.weight_version = self._weight_version" in method_source(
        "v1/engine/core.py", "EngineCore", "_attach_weight_version"
    )
    assert "self.engine_core.set_weight_version(weight_version)" in method_source(
        "v1/engine/llm_engine.py", "LLMEngine", "set_weight_version"
    )
    tok = load_tokenizer(tiny_lm_path)
    eos = tok.eos_token_id
    sampling = vllm_api.sampling
    params = sampling.SamplingParams(n=2, max_tokens=6, logprobs=0, output_kind=sampling.RequestOutputKind.FINAL_ONLY)
    request = core.EngineCoreRequest(
        request_id="0-abcdefgh",
        prompt_token_ids=[1, 2, 3],
        mm_features=None,
        sampling_params=params,
        pooling_params=None,
        arrival_time=0.0,
        lora_request=None,
        cache_salt=None,
        data_parallel_rank=None,
        external_req_id="0",
    )
    processor = op.OutputProcessor(None, log_stats=False)
    parent = parallel.ParentRequest(request)
    children = []
    for index in range(2):  # as LLMEngine.add_request fans out n > 1
        child_id, child_params = parent.get_child_info(index)
        child = request if index == 1 else copy(request)
        child.request_id, child.sampling_params = child_id, child_params
        processor.add_request(child, None, parent, index)
        children.append(child_id)
    tokens = {children[0]: [10, 11, 12, 13, 14, 15], children[1]: [20, 21, eos]}
    finished = []
    for step in range(6):
        label = "default" if step < 3 else "1"
        outputs = [
            core.EngineCoreOutput(
                child_id,
                [ids[step]],
                new_logprobs=lists(np.array([[ids[step]]]), np.array([[-0.25 * (step + 1)]]), np.array([1])),
                finish_reason=core.FinishReason.STOP
                if ids[step] == eos
                else (core.FinishReason.LENGTH if step == len(ids) - 1 else None),
            )
            for child_id, ids in tokens.items()
            if step < len(ids)
        ]
        finished += processor.process_outputs(outputs, weight_version=label).request_outputs
    (request_output,) = finished
    first, second = convert_request_output(request_output, tok, [eos], expected_prompt_ids=[1, 2, 3])
    assert first.output_token_ids == tokens[children[0]] and first.weight_switches == [3]
    assert first.log_probs == [-0.25 * (k + 1) for k in range(6)]
    assert second.output_token_ids == [20, 21, eos] and second.weight_switches == []
