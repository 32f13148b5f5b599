"""The vLLM rollout engine (CUDA only), written against vLLM 0.33 (``pip install ".[gpu]"``).

NOT RUN HERE: the machines this project is developed and tested on have no GPU and vLLM has no CPU
wheel, so :class:`VLLMRolloutEngine` has never been executed. What does run in the test suite are the
pure pieces below (request distribution, sampling-param translation, prompt building, output
conversion, engine arguments) and the worker extension's weight receiving over a real gloo group
(:mod:`openrlhf.rollout.vllm_worker`). vLLM is imported only when an engine is created, so importing
this module works without it.

How it uses vLLM:
- ``LLM(model, tensor_parallel_size, gpu_memory_utilization, enable_sleep_mode, enable_prefix_caching,
  worker_extension_cls=WeightSyncWorkerExtension, logprobs_mode="processed_logprobs", ...)``; tensor
  parallelism runs on Ray (``distributed_executor_backend="ray"``), its workers placed on the bundles
  named by ``VLLM_RAY_BUNDLE_INDICES`` of the placement group the engine actor was scheduled in.
- Image rows are ``{"prompt": text, "multi_modal_data": {"image": [...]}}`` with the processor's
  ``min_pixels`` / ``max_pixels`` passed as ``mm_processor_kwargs``; text rows are token-id prompts.
- ``SamplingParams(logprobs=0)`` returns the sampled token's log-prob. With ``processed_logprobs`` that is
  log_softmax(z / T) after top-k / top-p, which equals the HF engine's (untruncated) definition whenever
  top_p = 1 and top_k = -1; with truncation on, vLLM's values are those of the renormalised truncated
  distribution (a warning is logged). See :mod:`openrlhf.rollout.sampler_logprobs`.
- Weight updates go to every worker through ``collective_rpc``; the prefix cache is reset after each.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from typing import Any

from openrlhf.rollout.base import GenerationOutput, GenerationRequest, RolloutEngine, SamplingParams
from openrlhf.rollout.decoding import decode_response, eos_token_ids, trim_at_eos, vision_placeholder_ids
from openrlhf.rollout.dispatch import distribute_requests  # noqa: F401  (re-exported: prompts over engines)
from openrlhf.rollout.weight_sync import NamedTensors, WeightMeta

logger = logging.getLogger(__name__)

VLLM_VERSION = "0.33.0"
BANNED_LOGIT_BIAS = -100.0
WORKER_EXTENSION = "openrlhf.rollout.vllm_worker.WeightSyncWorkerExtension"
INSTALL_HINT = (
    f'the vllm rollout backend needs vLLM {VLLM_VERSION} on a CUDA machine: pip install ".[gpu]"; '
    "on a machine without a GPU use --rollout.backend hf"
)


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def require_vllm() -> Any:
    """Import vLLM, or fail with the install command."""
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return vllm


# --------------------------------------------------------------------------- pure pieces (tested on CPU)


def vllm_sampling_kwargs(
    params: SamplingParams,
    request_index: int = 0,
    stop_token_ids: Sequence[int] | None = None,
    banned_token_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one request.

    The seed is offset by the request index: vLLM seeds each request separately, and equal seeds would
    give every prompt the same random stream. Detokenisation is off: texts are decoded by
    :func:`decode_response`, exactly as the HF engine does. ``stop_token_ids`` (the eos ids the HF
    engine stops at) make both engines stop on the same tokens. ``banned_token_ids`` (a VLM's image/video
    placeholders) get a logit bias of -100, so they are never sampled (the HF engine bans them the same way).
    """
    params.validate()
    extra: dict[str, Any] = {"stop_token_ids": [int(t) for t in stop_token_ids]} if stop_token_ids else {}
    if banned_token_ids:
        extra["logit_bias"] = {int(t): BANNED_LOGIT_BIAS for t in banned_token_ids}
    return {
        "n": int(params.n),
        "temperature": float(params.temperature),
        "top_p": float(params.top_p),
        "top_k": int(params.top_k),
        "max_tokens": int(params.max_new_tokens),
        "seed": None if params.seed is None else int(params.seed) + request_index,
        "logprobs": 0,
        "detokenize": False,
        "skip_special_tokens": False,
        **extra,
    }


def truncation_changes_logprobs(params: SamplingParams) -> bool:
    """True when vLLM's processed log-probs (truncated distribution) differ from the HF engine's definition."""
    return params.temperature > 0 and (params.top_p < 1.0 or params.top_k > 0)


def vllm_prompt(request: GenerationRequest, index: int = 0) -> dict[str, Any]:
    """A vLLM prompt: token ids for text rows; text plus images (in order) for image rows."""
    if request.images:
        if not request.prompt_text:
            raise ValueError(f"request {index}: an image row needs prompt_text (the chat-templated prompt)")
        return {"prompt": request.prompt_text, "multi_modal_data": {"image": list(request.images)}}
    if not request.prompt_token_ids:
        raise ValueError(f"request {index}: empty prompt_token_ids")
    return {"prompt_token_ids": [int(t) for t in request.prompt_token_ids]}


def _sampled_logprobs(completion: Any, token_ids: Sequence[int]) -> list[float]:
    """The log-prob of each sampled token from vLLM's per-position {token_id: Logprob} entries."""
    entries = getattr(completion, "logprobs", None)
    if entries is None:
        raise ValueError("vLLM output has no logprobs: the request must set SamplingParams(logprobs=0)")
    values = []
    for pos, token in enumerate(token_ids):
        entry = entries[pos]
        if token not in entry:
            raise ValueError(f"vLLM output: no logprob for sampled token {token} at position {pos}")
        item = entry[token]
        values.append(float(getattr(item, "logprob", item)))
    return values


def convert_completion(
    completion: Any, prompt_token_ids: Sequence[int], tokenizer: Any, eos_ids: Sequence[int]
) -> GenerationOutput:
    """One vLLM ``CompletionOutput`` -> :class:`GenerationOutput` (cut and decoded as in the HF engine)."""
    raw = [int(t) for t in completion.token_ids]
    ids, finish = trim_at_eos(raw, eos_ids)
    if finish == "length" and getattr(completion, "finish_reason", None) == "stop":
        finish = "stop"  # a stop token other than eos
    logprobs = _sampled_logprobs(completion, ids)
    return GenerationOutput(
        prompt_token_ids=[int(t) for t in prompt_token_ids],
        output_token_ids=ids,
        text=decode_response(tokenizer, ids),
        logprobs=logprobs,
        finish_reason=finish,
    )


def convert_request_output(request_output: Any, tokenizer: Any, eos_ids: Sequence[int]) -> list[GenerationOutput]:
    """One vLLM ``RequestOutput`` (n completions) -> n :class:`GenerationOutput`, in completion order."""
    completions = sorted(request_output.outputs, key=lambda c: getattr(c, "index", 0))
    return [convert_completion(c, request_output.prompt_token_ids, tokenizer, eos_ids) for c in completions]


def executor_backend(tensor_parallel_size: int) -> str:
    """One GPU: vLLM's in-process executor; several: Ray workers on the placement group's bundles."""
    return "uni" if tensor_parallel_size == 1 else "ray"


def vllm_engine_kwargs(
    model_path: str,
    *,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.5,
    enable_sleep: bool = False,
    enable_prefix_caching: bool = True,
    enforce_eager: bool = False,
    max_model_len: int | None = None,
    dtype: str = "auto",
    seed: int = 0,
    multimodal: bool = False,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    max_images_per_prompt: int = 8,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Arguments of ``vllm.LLM`` for a rollout engine."""
    if tensor_parallel_size < 1:
        raise ValueError(f"vllm.tensor_parallel_size={tensor_parallel_size} must be >= 1")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"vllm.gpu_memory_utilization={gpu_memory_utilization} must be in (0, 1]")
    kwargs: dict[str, Any] = {
        "model": model_path,
        "tensor_parallel_size": tensor_parallel_size,
        "distributed_executor_backend": executor_backend(tensor_parallel_size),
        "gpu_memory_utilization": gpu_memory_utilization,
        "enable_sleep_mode": enable_sleep,
        "enable_prefix_caching": enable_prefix_caching,
        "enforce_eager": enforce_eager,
        "dtype": dtype,
        "seed": seed,
        "trust_remote_code": trust_remote_code,
        "worker_extension_cls": WORKER_EXTENSION,
        "logprobs_mode": "processed_logprobs",
        "max_logprobs": 1,
    }
    if max_model_len:
        kwargs["max_model_len"] = int(max_model_len)
    if multimodal:
        kwargs["limit_mm_per_prompt"] = {"image": int(max_images_per_prompt)}
        mm = {}
        if min_pixels is not None:
            mm["min_pixels"] = int(min_pixels)
        if max_pixels is not None:
            mm["max_pixels"] = int(max_pixels)
        if mm:
            kwargs["mm_processor_kwargs"] = mm
    return kwargs


def ray_executor_env(tensor_parallel_size: int, bundle_indices: Sequence[int] | None, gpus_per_worker: float) -> dict:
    """Environment for the engine process: which placement-group bundles vLLM's Ray workers take."""
    env = {"VLLM_ALLOW_INSECURE_SERIALIZATION": "1"}  # collective_rpc carries tensors and IPC handles
    if tensor_parallel_size > 1:
        if bundle_indices is None or len(bundle_indices) != tensor_parallel_size:
            raise ValueError(
                f"vLLM engine with tensor_parallel_size={tensor_parallel_size} needs that many bundle indices, "
                f"got {bundle_indices}"
            )
        env["VLLM_RAY_BUNDLE_INDICES"] = ",".join(str(int(i)) for i in bundle_indices)
        env["VLLM_RAY_PER_WORKER_GPUS"] = str(gpus_per_worker)
    return env


def is_multimodal_checkpoint(model_path: str, trust_remote_code: bool = False) -> bool:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    return getattr(config, "vision_config", None) is not None


# --------------------------------------------------------------------------- the engine (GPU only)


class VLLMRolloutEngine(RolloutEngine):
    """A ``vllm.LLM`` behind the rollout interface; meant to run as a Ray actor (see factory.py)."""

    def __init__(
        self,
        model_path: str,
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.5,
        enable_sleep: bool = False,
        enable_prefix_caching: bool = True,
        enforce_eager: bool = False,
        max_model_len: int | None = None,
        dtype: str = "auto",
        seed: int = 0,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_images_per_prompt: int = 8,
        bundle_indices: Sequence[int] | None = None,
        gpus_per_worker: float = 1.0,
        trust_remote_code: bool = False,
    ) -> None:
        vllm = require_vllm()
        if tensor_parallel_size > 1:
            # Ray must not narrow CUDA_VISIBLE_DEVICES of this process: vLLM's workers pick their own GPUs.
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        os.environ.update(ray_executor_env(tensor_parallel_size, bundle_indices, gpus_per_worker))
        self.model_path = model_path
        self.enable_sleep = enable_sleep
        self.multimodal = is_multimodal_checkpoint(model_path, trust_remote_code)
        kwargs = vllm_engine_kwargs(
            model_path,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_sleep=enable_sleep,
            enable_prefix_caching=enable_prefix_caching,
            enforce_eager=enforce_eager,
            max_model_len=max_model_len,
            dtype=dtype,
            seed=seed,
            multimodal=self.multimodal,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            max_images_per_prompt=max_images_per_prompt,
            trust_remote_code=trust_remote_code,
        )
        self._vllm = vllm
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        from transformers import GenerationConfig

        try:
            gen_config = GenerationConfig.from_pretrained(model_path)
        except OSError:
            gen_config = None
        self.eos_ids = eos_token_ids(self.tokenizer, gen_config)
        self.banned_ids = vision_placeholder_ids(self.tokenizer) if self.multimodal else []
        self._warned_truncation = False

    def model_info(self) -> dict[str, Any]:
        return {"backend": "vllm", "model_path": self.model_path, "multimodal": self.multimodal}

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[list[GenerationOutput]]:
        if truncation_changes_logprobs(params) and not self._warned_truncation:
            logger.warning(
                "vLLM rollout with top_p=%s top_k=%s: sampler log-probs are those of the truncated distribution, "
                "not log_softmax(logits / T) as the HF engine and the policy workers compute",
                params.top_p,
                params.top_k,
            )
            self._warned_truncation = True
        prompts = [vllm_prompt(r, i) for i, r in enumerate(requests)]
        sampling = [
            self._vllm.SamplingParams(**vllm_sampling_kwargs(params, i, self.eos_ids, self.banned_ids))
            for i in range(len(requests))
        ]
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        return [convert_request_output(o, self.tokenizer, self.eos_ids) for o in outputs]

    # ------------------------------------------------------------------ weights

    def update_weights(self, named_tensors: NamedTensors) -> int:
        items = list(named_tensors.items()) if hasattr(named_tensors, "items") else list(named_tensors)
        counts = self.llm.collective_rpc("load_named_weights", args=(items,))
        self.llm.reset_prefix_cache()
        return int(counts[0])

    def init_weight_sync_group(
        self,
        master_address: str,
        master_port: int,
        rank: int,
        world_size: int,
        group_name: str,
        backend: str = "nccl",
        timeout_s: float = 600.0,
    ) -> list[int]:
        """Every worker joins; ``rank`` is this engine's first rank (see weight_sync.engine_sync_ranks)."""
        return self.llm.collective_rpc(
            "init_weight_sync_group",
            args=(master_address, master_port, rank, world_size, group_name, backend, timeout_s),
        )

    def receive_weights(self, meta: WeightMeta) -> int:
        counts = self.llm.collective_rpc("receive_weights", args=(list(meta),))
        self.llm.reset_prefix_cache()
        return int(counts[0])

    def update_weights_from_ipc(self, handles_by_device: dict[str, list[tuple[str, Any]]]) -> int:
        """Colocated with the policy: load CUDA-IPC-shared tensors (weight_sync.cuda_ipc_handles) per GPU."""
        counts = self.llm.collective_rpc("update_weights_from_ipc", args=(handles_by_device,))
        self.llm.reset_prefix_cache()
        return int(counts[0])

    def reset_prefix_cache(self) -> None:
        self.llm.reset_prefix_cache()

    # ------------------------------------------------------------------ memory

    def sleep(self, level: int = 1) -> None:
        """Level 1: weights to host memory, KV cache dropped (needs vllm.enable_sleep)."""
        if self.enable_sleep:
            self.llm.sleep(level=level)

    def wake_up(self, tags: list[str] | None = None) -> None:
        """Wake all, or only ``["weights"]`` (before a weight update) then ``["kv_cache"]``."""
        if self.enable_sleep:
            if tags:
                self.llm.wake_up(tags=tags)
            else:
                self.llm.wake_up()

    def ping(self) -> bool:
        return True
