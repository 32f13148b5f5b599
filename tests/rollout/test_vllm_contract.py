"""Contract tests: the vLLM rollout path against the real vLLM 0.33.0 wheel, not against copies of our dicts.

The wheel (tests/vllm_wheel.py) cannot run here (CUDA only), but its pure-Python modules import with the
CPU torch: ``SamplingParams``, ``EngineArgs`` and the config classes, the msgpack encoder/decoder that
carries ``LLM.collective_rpc``, the multimodal prompt-update code, the output and logprob classes, and
the parallel-sampling fan-out. What imports CUDA-only or heavy packages (``vllm.LLM``, the GPU worker,
the executors) is checked from the wheel's source with ``ast``.

The collective_rpc round trip reproduces vLLM 0.33 step by step (no sockets):
- vllm/entrypoints/llm.py ``LLM.collective_rpc(method, timeout, args, kwargs)`` -> v1/engine/core_client.py
  ``SyncMPClient.call_utility("collective_rpc", method, timeout, args, kwargs)``, which encodes
  ``(client_index=0, call_id, "collective_rpc", (method, timeout, args, kwargs))`` with its
  ``MsgpackEncoder(oob_tensor_consumer=None)`` (no tensor queue: ``mm_tensor_ipc`` defaults to
  "direct_rpc") and sends the frames over ZMQ (copies: each frame becomes ``bytes`` here);
- v1/engine/core.py ``process_input_sockets`` decodes them with ``generic_decoder = MsgpackDecoder()``:
  untyped; ``_handle_client_request`` passes the args through ``_convert_msgspec_args`` (a no-op: no
  parameter of ``EngineCore.collective_rpc`` is a msgspec Struct) to the executor, which calls every
  worker with ``vllm.v1.serial_utils.run_method(worker, method, args, kwargs or {})``;
- the results go back as ``EngineCoreOutputs(utility_output=UtilityOutput(call_id,
  result=UtilityResult(results)))`` through ``MsgpackEncoder()`` and ``MsgpackDecoder(EngineCoreOutputs)``.
The engine process sets ``VLLM_ALLOW_INSECURE_SERIALIZATION=1`` (``ray_executor_env``), so the tests do too.
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from types import SimpleNamespace
from typing import Annotated

import pytest
import torch
from openrlhf_helpers import find_free_port, generate
from vllm_wheel import method_params, method_source, vllm_class_ast, vllm_source

from openrlhf.config import ConfigError
from openrlhf.config import ModelConfig as ActorConfig
from openrlhf.config_loading import build_config, load_config
from openrlhf.data.sample import Sample
from openrlhf.models.loading import load_model
from openrlhf.rollout.base import GenerationOutput, GenerationRequest, SamplingParams
from openrlhf.rollout.ipc_weights import IpcSender
from openrlhf.rollout.prompt_encoder import PromptEncoder
from openrlhf.rollout.vllm_engine import (
    VLLM_WAKE_TAGS,
    VLLMRolloutEngine,
    ray_executor_env,
    vllm_engine_kwargs,
    vllm_prompt,
    vllm_sampling_kwargs,
    weight_record_buckets,
)
from openrlhf.rollout.vllm_worker import WeightSyncWorkerExtension, weight_record
from openrlhf.rollout.weight_switch import WeightSwitch
from openrlhf.rollout.weight_sync import broadcast_named_tensors, create_sync_group_sender, pack_state_dict, weight_meta
from openrlhf.trainer.experience_maker import sampling_params
from openrlhf.utils.actor_calls import InDriverHandle

from .helpers import CpuWorker, random_image, run_ranks

pytestmark = pytest.mark.contract


# ----------------------------------------------------------------------------- collective_rpc, as vLLM runs it


class CollectiveRpc:
    """``LLM.collective_rpc`` through vLLM 0.33's own serialization to CPU workers and back (module doc)."""

    def __init__(self, api) -> None:
        self.api = api
        self.call_id = 0

    def deliver(self, method: str, args: tuple = (), kwargs: dict | None = None) -> tuple[str, list, dict]:
        """What the engine core hands to the executor: (method, args, kwargs) as decoded there."""
        serial = self.api.serial
        self.call_id += 1
        frames = serial.MsgpackEncoder().encode((0, self.call_id, "collective_rpc", (method, None, args, kwargs)))
        frames = [bytes(frame) for frame in frames]  # ZMQ copies every frame into the other process
        client_index, call_id, utility, utility_args = serial.MsgpackDecoder().decode(frames)
        assert (client_index, call_id, utility) == (0, self.call_id, "collective_rpc")
        method, _timeout, args, kwargs = utility_args
        return method, args, kwargs or {}

    def results_back(self, results: list) -> list:
        """The workers' results as ``LLM.collective_rpc`` returns them in the engine process."""
        engine = self.api.engine
        output = engine.UtilityOutput(self.call_id, result=self.api.serial.UtilityResult(results))
        frames = self.api.serial.MsgpackEncoder().encode(engine.EngineCoreOutputs(utility_output=output))
        decoded = self.api.serial.MsgpackDecoder(engine.EngineCoreOutputs).decode([bytes(f) for f in frames])
        return decoded.utility_output.result.result

    def __call__(self, workers: list, method: str, args: tuple = (), kwargs: dict | None = None) -> list:
        """Every worker runs the decoded call concurrently (as the executors do; a group join needs it)."""
        method, args, kwargs = self.deliver(method, args, kwargs)
        calls = [lambda w=w: self.api.serial.run_method(w, method, args, kwargs) for w in workers]
        return self.results_back(run_ranks(*calls))


class LoopbackLLM:
    """The part of ``vllm.LLM`` the engine's weight methods use, over CPU workers and :class:`CollectiveRpc`."""

    def __init__(self, rpc: CollectiveRpc, workers: list) -> None:
        self.rpc, self.workers, self.prefix_resets = rpc, workers, 0
        self.weight_versions: list[str] = []  # the labels of vLLM's per-token weight-version spans
        self.llm_engine = SimpleNamespace(set_weight_version=self.weight_versions.append)

    def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
        return self.rpc(self.workers, method, args, kwargs)

    def reset_prefix_cache(self, reset_running_requests=False, reset_connector=False):
        self.prefix_resets += 1
        return True


@pytest.fixture
def rpc(vllm_api, monkeypatch):
    for key, value in ray_executor_env(1, None, 1.0).items():  # what the engine process sets
        monkeypatch.setenv(key, value)
    return CollectiveRpc(vllm_api)


def loopback_engine(rpc: CollectiveRpc, workers: list) -> VLLMRolloutEngine:
    """A VLLMRolloutEngine whose ``llm`` is :class:`LoopbackLLM` (its constructor needs a GPU)."""
    engine = object.__new__(VLLMRolloutEngine)
    engine.llm = LoopbackLLM(rpc, workers)
    engine._switch, engine._prefix_cache_stale = WeightSwitch(), False
    return engine


def assert_weights_equal(model, expected: dict) -> None:
    for name, param in model.named_parameters():
        assert torch.equal(param, expected[name]), name


def test_object_store_weights_survive_collective_rpc(rpc, tiny_lm_path, updated_lm_path):
    """Break: raw tensors arrive as [dtype, shape, data] lists; weight records arrive whole and load."""
    worker = CpuWorker(0, load_model(tiny_lm_path))
    norm = torch.arange(256, dtype=torch.float32)
    _, args, _ = rpc.deliver("load_named_weights", ([("model.norm.weight", norm)],))
    assert isinstance(args[0][0][1], list) and args[0][0][1][:2] == ["float32", [256]]  # the tensor is gone
    with pytest.raises(TypeError, match="weight_record"):
        rpc([worker], "load_named_weights", ([("model.norm.weight", norm)],))

    policy = pack_state_dict(load_model(updated_lm_path).named_parameters())
    engine = loopback_engine(rpc, [worker, CpuWorker(1, load_model(tiny_lm_path))])
    assert len(list(weight_record_buckets(policy, bucket_bytes=64 * 1024))) > 2  # several calls
    assert engine.update_weights(policy) == len(policy)
    assert engine.llm.prefix_resets == 1 and engine.llm.weight_versions == ["1"]  # one update, one label
    for w in engine.llm.workers:
        assert_weights_equal(w.hf_model, policy)


def test_weight_records_keep_dtype_shape_and_bytes(rpc):
    class Recorder:
        def load_named_weights(self, records):
            from openrlhf.rollout.vllm_worker import named_tensor_from_wire

            self.got = [named_tensor_from_wire(r) for r in records]
            return len(records)

    tensors = {
        "bf16": torch.randn(4, 3).to(torch.bfloat16),
        "scalar": torch.tensor(7, dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
        "empty": torch.empty(0, 5),
        "strided": torch.arange(12.0).reshape(3, 4).t(),
    }
    recorder = Recorder()
    assert rpc([recorder], "load_named_weights", ([weight_record(n, t) for n, t in tensors.items()],)) == [5]
    for (name, tensor), (got_name, got) in zip(tensors.items(), recorder.got, strict=True):
        assert got_name == name and got.dtype == tensor.dtype and torch.equal(got, tensor), name


def test_broadcast_group_args_and_meta_survive_collective_rpc(rpc, tiny_lm_path, updated_lm_path):
    """Two TP workers of one engine join the sync group as ranks 1, 2 and load policy rank 0's broadcast."""
    policy = load_model(updated_lm_path)
    engine = loopback_engine(rpc, [CpuWorker(r, load_model(tiny_lm_path)) for r in range(2)])
    meta = weight_meta(policy.named_parameters())
    port = find_free_port()
    box = {}

    def sender():
        box["group"] = create_sync_group_sender("127.0.0.1", port, 3, "contract-sync", timeout_s=60)

    _, ranks = run_ranks(
        sender, lambda: engine.init_weight_sync_group("127.0.0.1", port, 1, 3, "contract-sync", "gloo", 60)
    )
    assert ranks == [1, 2]
    sent, received = run_ranks(
        lambda: broadcast_named_tensors(policy.named_parameters(), box["group"]), lambda: engine.receive_weights(meta)
    )
    assert sent == received == len(meta)
    expected = dict(policy.named_parameters())
    for w in engine.llm.workers:
        assert_weights_equal(w.hf_model, expected)


def test_ipc_payloads_survive_collective_rpc(rpc, tiny_lm_path, updated_lm_path):
    """A colocated policy rank's shared-memory bucket (openrlhf.rollout.ipc_weights) reaches the worker."""
    policy = dict(load_model(updated_lm_path).named_parameters())
    sender = IpcSender(torch.device("cpu"))
    payload = sender.pack(policy.items())
    engine = loopback_engine(rpc, [CpuWorker(0, load_model(tiny_lm_path))])
    try:
        assert engine.update_weights_from_ipc({"GPU-elsewhere": {}, payload["device"]: payload}) == len(policy)
    finally:
        sender.release()
    assert_weights_equal(engine.llm.workers[0].hf_model, policy)


def test_cuda_ipc_handle_survives_collective_rpc(rpc, monkeypatch):
    """A CUDA handle (torch's reduce_tensor on a GPU) is (rebuild_cuda_tensor, args): it needs vLLM's pickle
    fallback, and arrives with lists for its sizes, which torch's rebuild accepts. Built here from a CPU
    tensor in reduce_tensor's CUDA order; rebuild_cuda_tensor itself needs a GPU."""
    from torch.multiprocessing.reductions import rebuild_cuda_tensor

    from openrlhf.rollout import ipc_weights

    tensor = torch.arange(24, dtype=torch.float32).reshape(4, 6)[1:]
    storage = tensor._typed_storage()
    args = (type(tensor), tensor.size(), tensor.stride(), tensor.storage_offset(), type(storage), tensor.dtype, 0)
    args += (b"\x01cuda-ipc-handle", 96, 0, False, b"refcount", 0, b"event", True)
    payload = {
        "device": "GPU-1234",
        "kind": "cuda_ipc",
        "handle": (rebuild_cuda_tensor, args),
        "meta": [("w", "float32", [3, 6], 0)],
    }
    _, delivered, _ = rpc.deliver("update_weights_from_ipc", ({"GPU-1234": payload},))
    got = delivered[0]["GPU-1234"]
    func, got_args = got["handle"]
    assert func is rebuild_cuda_tensor and got["kind"] == "cuda_ipc" and got["meta"] == [["w", "float32", [3, 6], 0]]
    assert got_args[0] is torch.Tensor and got_args[4] is type(storage) and got_args[5] is torch.float32
    assert got_args[1:4] == [[3, 6], [6, 1], 6] and got_args[7:] == list(args[7:])
    assert isinstance(got_args[ipc_weights._CUDA_REBUILD_DEVICE_ARG], int)  # the index the receiver rewrites
    rebuilt = torch._utils._rebuild_tensor(storage, got_args[3], got_args[1], got_args[2])
    assert torch.equal(rebuilt, tensor)

    # the same trip for torch's handle of a CPU shared-memory tensor (rebuild_tensor, (cls, storage, meta))
    from torch.multiprocessing.reductions import reduce_tensor

    shared = torch.arange(6.0).reshape(2, 3).share_memory_()
    _, delivered, _ = rpc.deliver("update_weights_from_ipc", ({"cpu": {"handle": reduce_tensor(shared)}},))
    rebuild, rebuild_args = delivered[0]["cpu"]["handle"]
    assert torch.equal(rebuild(*rebuild_args), shared)

    monkeypatch.setenv("VLLM_ALLOW_INSECURE_SERIALIZATION", "0")
    with pytest.raises(TypeError, match="VLLM_ALLOW_INSECURE_SERIALIZATION"):
        rpc.deliver("update_weights_from_ipc", ({"GPU-1234": payload},))


# ----------------------------------------------------------------------------- vllm.LLM and its engine arguments


def _field_type(api, name: str):
    field = {f.name: f for f in dataclasses.fields(api.arg_utils.EngineArgs)}[name]
    return eval(field.type, vars(api.arg_utils)) if isinstance(field.type, str) else field.type  # noqa: S307


def _validate(config_cls, field: str, value) -> None:
    """Validate one value against a vLLM pydantic config field (its type and constraints such as ge=-1)."""
    from pydantic import TypeAdapter

    info = config_cls.__pydantic_fields__[field]
    annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    TypeAdapter(annotation).validate_python(value)


@pytest.mark.parametrize("tp", [1, 2])
def test_engine_kwargs_are_engine_args_with_the_intended_meaning(vllm_api, tp, tiny_lm_path, tiny_vlm_path):
    kwargs = vllm_engine_kwargs(str(tiny_lm_path), tensor_parallel_size=tp, max_model_len=1088, enable_sleep=True)
    vision = vllm_engine_kwargs(str(tiny_vlm_path), multimodal=True, min_pixels=3136, max_pixels=12845056)
    vllm_api.arg_utils.EngineArgs(**kwargs)  # a dataclass: unknown keywords fail
    vllm_api.arg_utils.EngineArgs(**vision)
    model_cfg, parallel = vllm_api.model_config, vllm_api.parallel_config
    for dtype in typing.get_args(ActorConfig.model_fields["dtype"].annotation):  # actor.dtype, as the factory passes it
        assert vllm_engine_kwargs("/ckpt", dtype=dtype)["dtype"] in typing.get_args(model_cfg.ModelDType), dtype
    assert kwargs["logprobs_mode"] in typing.get_args(model_cfg.LogprobsMode)
    assert kwargs["logprobs_mode"] in model_cfg.PROCESSED_LOGPROBS_MODES  # after temperature, as the trainer
    _validate(model_cfg.ModelConfig, "max_logprobs", kwargs["max_logprobs"])
    assert kwargs["max_logprobs"] >= vllm_sampling_kwargs(SamplingParams())["logprobs"]
    _validate(model_cfg.ModelConfig, "enable_sleep_mode", kwargs["enable_sleep_mode"])
    assert kwargs["enable_sleep_mode"] is True and _field_type(vllm_api, "enable_sleep_mode") is bool
    assert kwargs["distributed_executor_backend"] in typing.get_args(parallel.DistributedExecutorBackend)
    assert kwargs["distributed_executor_backend"] == ("uni" if tp == 1 else "ray")
    # openrlhf-eval runs without Ray: TP > 1 there takes vLLM's own worker processes, and needs no bundles.
    no_ray = vllm_engine_kwargs("/ckpt", tensor_parallel_size=2, in_placement_group=False)
    assert no_ray["distributed_executor_backend"] == "mp"
    assert no_ray["distributed_executor_backend"] in typing.get_args(parallel.DistributedExecutorBackend)
    assert "VLLM_RAY_BUNDLE_INDICES" not in ray_executor_env(2, None, 1.0, in_placement_group=False)
    resolved = vllm_api.import_utils.resolve_obj_by_qualname(kwargs["worker_extension_cls"])
    assert resolved is WeightSyncWorkerExtension and _field_type(vllm_api, "worker_extension_cls") is str
    vllm_api.cache_config.CacheConfig(
        gpu_memory_utilization=kwargs["gpu_memory_utilization"], enable_prefix_caching=kwargs["enable_prefix_caching"]
    )
    mm = vllm_api.multimodal_config.MultiModalConfig(
        limit_per_prompt=vision["limit_mm_per_prompt"], mm_processor_kwargs=vision["mm_processor_kwargs"]
    )
    assert (mm.get_limit_per_prompt("image"), mm.get_limit_per_prompt("video")) == (8, 0)
    assert mm.mm_tensor_ipc == "direct_rpc"  # collective_rpc args are not moved to a tensor queue
    qwen2_vl = vllm_source("model_executor/models/qwen2_vl.py")  # the processor reads both names
    assert all(f'mm_kwargs.get("{key}")' in qwen2_vl for key in vision["mm_processor_kwargs"])


def test_llm_has_the_methods_and_parameters_the_engine_uses(vllm_api):
    llm = vllm_class_ast("entrypoints/llm.py", "LLM")
    init = method_params(llm, "__init__")
    engine_args = {f.name for f in dataclasses.fields(vllm_api.arg_utils.EngineArgs)}
    for key in vllm_engine_kwargs("/ckpt", tensor_parallel_size=2, multimodal=True, min_pixels=1, max_pixels=2):
        assert key in init or key in engine_args, key  # LLM(**kwargs) forwards the rest to EngineArgs
    # every explicit LLM parameter the engine sets reaches EngineArgs under the same name
    init_node = next(n for n in llm.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    call = next(n for n in ast.walk(init_node) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "EngineArgs")
    forwarded = {k.arg: ast.unparse(k.value) for k in call.keywords if k.arg}
    for key in set(vllm_engine_kwargs("/ckpt", multimodal=True, min_pixels=1)) & set(init):
        assert forwarded.get(key) == key, key
    assert {"self", "level"} <= set(method_params(llm, "sleep"))
    assert {"self", "tags"} <= set(method_params(llm, "wake_up"))
    assert method_params(llm, "collective_rpc")[:5] == ["self", "method", "timeout", "args", "kwargs"]
    assert method_params(llm, "reset_prefix_cache")[0] == "self"
    assert {"prompts", "sampling_params", "use_tqdm"} <= set(method_params(llm, "generate"))
    assert method_params(llm, "get_tokenizer") == ["self"]


def test_wake_up_tags_are_the_ones_vllm_sleeps():
    module = ast.parse(vllm_source("v1/executor/abstract.py"))
    assign = next(
        n for n in module.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "SLEEP_TAGS"
    )
    sleep_tags = set(ast.literal_eval(assign.value.args[0]))  # SLEEP_TAGS = frozenset(("weights", "kv_cache"))
    assert set(VLLM_WAKE_TAGS) == sleep_tags
    engine = object.__new__(VLLMRolloutEngine)
    engine.enable_sleep, engine._asleep = True, True
    with pytest.raises(ValueError, match="weight"):
        engine.wake_up(["weight"])  # vLLM would only log a warning and stay asleep


def _class_attrs(node: ast.ClassDef) -> set[str]:
    names = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(item.name)
        elif isinstance(item, ast.Assign):
            names.update(t.id for t in item.targets if isinstance(t, ast.Name))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.add(item.target.id)
    return names


def _self_assignments(node: ast.ClassDef) -> set[str]:
    return {
        t.attr
        for n in ast.walk(node)
        if isinstance(n, (ast.Assign, ast.AnnAssign))
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    }


def test_worker_extension_fits_vllms_gpu_worker():
    """vLLM appends the extension to the GPU worker's bases and asserts no attribute name is taken
    (v1/worker/worker_base.py); the extension reads rank, device and model_runner.get_model().load_weights."""
    worker = vllm_class_ast("v1/worker/gpu_worker.py", "Worker")
    base = vllm_class_ast("v1/worker/worker_base.py", "WorkerBase")
    assert [ast.unparse(b) for b in worker.bases] == ["WorkerBase"]
    assert "worker_class.__bases__ = worker_class.__bases__ + (" in vllm_source("v1/worker/worker_base.py")
    ours = {a for a in dir(WeightSyncWorkerExtension) if not a.startswith("__")}
    assert not ours & (_class_attrs(worker) | _class_attrs(base) | set(dir(object)))
    assert "rank" in _self_assignments(base) and {"device", "model_runner"} <= _self_assignments(worker)
    for path in ("v1/worker/gpu_model_runner.py", "v1/worker/gpu/model_runner.py"):
        runner = vllm_class_ast(path, "GPUModelRunner")
        assert "get_model" in _class_attrs(runner) and "model" in _self_assignments(runner), path
    for path, cls in (
        ("model_executor/models/qwen2.py", "Qwen2ForCausalLM"),
        ("model_executor/models/qwen2_5_vl.py", "Qwen2_5_VLForConditionalGeneration"),
    ):
        assert method_params(vllm_class_ast(path, cls), "load_weights") == ["self", "weights"], cls


# ----------------------------------------------------------------------------- sampling


def test_sampling_kwargs_build_the_intended_real_sampling_params(vllm_api):
    params = SamplingParams(n=4, temperature=0.7, top_p=0.9, top_k=-1, max_new_tokens=32, seed=5)
    kwargs = vllm_sampling_kwargs(params, 3, stop_token_ids=[7, 9], banned_token_ids=[5, 6])
    real = vllm_api.sampling.SamplingParams(**kwargs)  # a msgspec Struct: unknown keywords fail
    assert (real.n, real.temperature, real.top_p, real.top_k, real.max_tokens) == (4, 0.7, 0.9, -1, 32)
    assert real.seed == kwargs["seed"] and isinstance(real.seed, int) and real.seed != 5 + 3
    assert real.logprobs == 0 and real.stop_token_ids == [7, 9] and real.logit_bias == {5: -100.0, 6: -100.0}
    assert real.detokenize is False and real.skip_special_tokens is False
    assert real.sampling_type == vllm_api.sampling.SamplingType.RANDOM_SEED
    greedy = vllm_api.sampling.SamplingParams(**vllm_sampling_kwargs(SamplingParams(temperature=0.0, seed=None)))
    assert greedy.sampling_type == vllm_api.sampling.SamplingType.GREEDY and greedy.seed is None


def _cfg(**rollout):
    # one sample per prompt goes with a non-group estimator (the config refuses GRPO's group_norm with n = 1)
    algo = {"advantage": {"estimator": "reinforce"}} if rollout.get("n_samples_per_prompt") == 1 else {}
    return build_config({"rollout": rollout, "algo": algo})


@pytest.mark.parametrize(
    "rollout",
    [
        {"temperature": 2.0},
        {"temperature": 0.0, "n_samples_per_prompt": 1},
        {"temperature": 1e-4},
        {"top_k": -1, "top_p": 1.0},
        {"top_k": 1, "top_p": 1e-6},
        {"max_new_tokens": 1, "n_samples_per_prompt": 1},
        {"n_samples_per_prompt": 64},
    ],
)
def test_what_the_config_accepts_vllm_accepts(vllm_api, rollout):
    cfg = _cfg(**rollout)
    for greedy in (False, True):
        params = sampling_params(cfg, seed=11, greedy=greedy)
        real = vllm_api.sampling.SamplingParams(**vllm_sampling_kwargs(params, 0))
        assert real.n == params.n and real.max_tokens == params.max_new_tokens


@pytest.mark.parametrize(
    "rollout, vllm_kwargs",
    [
        ({"temperature": 2.01}, {"temperature": 2.01}),
        ({"temperature": 0.0, "n_samples_per_prompt": 2}, {"temperature": 0.0, "n": 2}),
        ({"top_p": 0.0}, {"top_p": 0.0}),
        ({"top_p": 1.01}, {"top_p": 1.01}),
        ({"top_k": -2}, {"top_k": -2}),
        ({"n_samples_per_prompt": 0}, {"n": 0}),
    ],
)
def test_what_vllm_refuses_the_config_refuses_at_load(vllm_api, rollout, vllm_kwargs):
    with pytest.raises(vllm_api.exceptions.VLLMValidationError):
        vllm_api.sampling.SamplingParams(**vllm_kwargs)
    argv = [x for key, value in rollout.items() for x in (f"--rollout.{key}", str(value))]
    with pytest.raises(ConfigError):
        load_config(argv)


class SeedRecordingEngine:
    """A vLLM engine actor as ``generate`` sees it, recording the seed vLLM gives each sample: the engine's
    request seeds, fanned out over n by vLLM's own ParentRequest (v1/engine/parallel_sampling.py)."""

    def __init__(self, api) -> None:
        self.api = api

    def generate_stream(self, requests: list[GenerationRequest], params: SamplingParams):
        yield list(enumerate(self.generate(requests, params)))

    def generate(self, requests: list[GenerationRequest], params: SamplingParams):
        results = []
        for k, request in enumerate(requests):
            sp = self.api.sampling.SamplingParams(**vllm_sampling_kwargs(params, k))
            parent = self.api.parallel_sampling.ParentRequest(
                SimpleNamespace(request_id=f"r{k}", external_req_id=f"r{k}", params=sp)
            )
            seeds = [parent.get_child_info(j)[1].seed for j in range(sp.n)]
            results.append([GenerationOutput(request.prompt_token_ids, [], str(s), []) for s in seeds])
        return results


def test_prompt_seeds_are_distinct_over_engines_and_the_same_on_reruns(vllm_api, monkeypatch):
    """Break 7: the seed of every sample of every prompt of a step, dealt over 3 engines, is distinct (the
    old seed + engine index + request index collided), from step to step too, and identical on a rerun."""
    prompts = [SimpleNamespace(request=GenerationRequest("", [i + 1])) for i in range(10)]

    def step_seeds(step_seed: int) -> list[int]:
        engines = [InDriverHandle(SeedRecordingEngine(vllm_api)) for _ in range(3)]  # called as actors are
        params = SamplingParams(n=4, temperature=1.0, seed=step_seed)
        outputs = generate(engines, prompts, params)
        assert [o.prompt_token_ids for o in outputs] == [p.request.prompt_token_ids for p in prompts for _ in range(4)]
        return [int(o.text) for o in outputs]

    first, again, next_step = step_seeds(100003), step_seeds(100003), step_seeds(100004)
    assert first == again
    assert len(set(first)) == len(first) == 40
    assert not set(first) & set(next_step)


# ----------------------------------------------------------------------------- prompts in, outputs out


def test_image_rows_reach_vllm_as_the_driver_tokens(vllm_api, tiny_vlm_path, tmp_path):
    """Break 8: vLLM expands one <|image_pad|> per image (the prompt update of its Qwen2-VL processor, run
    by vLLM's own matcher) back to exactly the ids the driver's PromptEncoder trains on; the expanded
    ids themselves would be expanded a second time."""
    cfg = build_config({"actor": {"model_name_or_path": str(tiny_vlm_path)}, "data": {"max_pixels": 12544}})
    encoder = PromptEncoder(cfg)
    paths = []
    for i, size in enumerate([(56, 56), (84, 112)]):
        random_image(i, *size).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    img = {"type": "image"}
    content = [img, {"type": "text", "text": "and"}, img, {"type": "text", "text": "Which is larger?"}]
    encoded = encoder.encode(Sample([{"role": "user", "content": content}], images=paths, source="mem", line=1))
    request = encoded.request
    pad = encoder.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    kwargs = vllm_engine_kwargs(  # as the factory builds them
        str(tiny_vlm_path), multimodal=True, min_pixels=cfg.data.min_pixels, max_pixels=cfg.data.max_pixels
    )
    sent = vllm_prompt(request, 0, pad)
    assert set(sent) == {"prompt_token_ids", "multi_modal_data"} and sent["multi_modal_data"]["image"] == request.images
    assert sent["prompt_token_ids"].count(pad) == 2

    # vLLM (model_executor/models/qwen2_5_vl.py, _get_prompt_updates): the HF image processor run with the
    # engine's mm_processor_kwargs gives each image its grid, and the image's placeholder becomes
    # grid.prod() // merge_size**2 placeholders. The same rule from the wheel's source, then vLLM's matcher.
    rule = method_source("model_executor/models/qwen2_5_vl.py", "Qwen2_5_VLMultiModalProcessor", "_get_prompt_updates")
    for line in ("merge_length = image_processor.merge_size ** 2", "num_tokens = int(grid_thw.prod()) // merge_length"):
        assert line in rule, line
    assert "target=[placeholder[modality]]" in rule and "return [placeholder[modality]] * num_tokens" in rule
    from transformers import AutoImageProcessor

    image_processor = AutoImageProcessor.from_pretrained(tiny_vlm_path, **kwargs["mm_processor_kwargs"])
    grids = image_processor(images=request.images, return_tensors="pt")["image_grid_thw"]
    torch.testing.assert_close(grids, encoded.multimodal["image_grid_thw"])
    counts = [int(g.prod()) // image_processor.merge_size**2 for g in grids]
    processing = vllm_api.processing
    update = processing.PromptReplacement(modality="image", target=[pad], replacement=lambda i: [pad] * counts[i])
    mm_updates = {"image": [[update.resolve(i)] for i in range(len(counts))], "video": []}  # no video items
    seen, matched = processing.apply_token_matches(sent["prompt_token_ids"], mm_updates)
    assert all(m is not None for m in matched["image"])
    assert seen == request.prompt_token_ids
    twice, _ = processing.apply_token_matches(list(request.prompt_token_ids), mm_updates)
    assert twice.count(pad) == sum(2 * c - 1 for c in counts)  # what sending the driver's ids would do
