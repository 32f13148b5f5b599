"""The Hugging Face rollout engine: ``transformers`` generate on any device; the CPU default and what CI runs.

Requests are expanded to n copies each, grouped by modality (text rows take the given prompt token ids;
image rows go through the processor with their images, in order), cut into batches of
``generate_batch_size`` sequences and generated left-padded. Each response carries its sampler log-probs
(see :mod:`openrlhf.rollout.sampler_logprobs` for the definition), stops at the first eos token (kept)
and is decoded with the reasoning tags kept (:mod:`openrlhf.rollout.decoding`).

The checkpoint's own generation defaults (a repetition penalty, a top-p in ``generation_config.json``)
are dropped at load: the :class:`SamplingParams` of each call are the whole sampler, as in vLLM.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessorList

from openrlhf.rollout.base import FinishedGroups, GenerationOutput, GenerationRequest, RolloutEngine, SamplingParams
from openrlhf.rollout.decoding import decode_response, eos_token_ids, trim_at_eos, vision_placeholder_ids
from openrlhf.rollout.sampler_logprobs import SamplerLogProbRecorder
from openrlhf.rollout.weight_switch import WeightSwitch
from openrlhf.rollout.weight_sync import (
    NamedTensors,
    SyncGroup,
    WeightMeta,
    create_sync_group,
    dtype_from_name,
    load_named_tensors,
    receive_named_tensors,
    resolve_param_name,
)


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_generation_config(params: SamplingParams, eos_ids: list[int], pad_id: int) -> GenerationConfig:
    """A complete generation config: every processor the checkpoint could switch on is set to neutral."""
    greedy = params.temperature == 0
    return GenerationConfig(
        do_sample=not greedy,
        temperature=1.0 if greedy else float(params.temperature),
        top_k=0 if greedy or params.top_k == -1 else int(params.top_k),
        top_p=1.0 if greedy else float(params.top_p),
        max_new_tokens=int(params.max_new_tokens),
        min_new_tokens=0,
        num_beams=1,
        num_return_sequences=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        eos_token_id=list(eos_ids),
        pad_token_id=int(pad_id),
        return_dict_in_generate=True,
    )


@contextlib.contextmanager
def seeded_rng(seed: int | None, device: torch.device) -> Iterator[None]:
    """Fix torch's RNG for one call (restored after) when a seed is given; otherwise use the running RNG."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BanTokens:
    """A logits processor that makes the given token ids impossible to sample (logit -inf)."""

    def __init__(self, token_ids: list[int]) -> None:
        self.token_ids = list(token_ids)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.token_ids:
            scores[:, self.token_ids] = float("-inf")
        return scores


class SafePoint:
    """A logits processor that lets waiting weight updates land (WeightSwitch.safe_point) once this step's
    logits are computed, recording how many tokens each response had sampled by then (the step's own token
    included: its logits are the old weights')."""

    def __init__(self, switch: WeightSwitch, prompt_length: int) -> None:
        self.switch = switch
        self.prompt_length = prompt_length
        self.switched_at: list[int] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        ran = self.switch.safe_point()
        self.switched_at += [input_ids.shape[1] - self.prompt_length + 1] * ran
        return scores


def engine_kwargs(cfg) -> dict[str, Any]:
    """The HFRolloutEngine keywords a run's config decides (the Ray actors' and the in-process engine's)."""
    return {
        "generate_batch_size": cfg.rollout.generate_batch_size,
        "min_pixels": cfg.data.min_pixels,
        "max_pixels": cfg.data.max_pixels,
        "trust_remote_code": cfg.actor.trust_remote_code,
    }


class HFRolloutEngine(RolloutEngine):
    """transformers generate behind the rollout interface; runs in-process or as a Ray actor (HFRolloutActor)."""

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "auto",
        device: str | None = None,
        generate_batch_size: int = 64,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        num_threads: int = 0,
        engines_on_node: int = 0,
        seed: int = 0,
        trust_remote_code: bool = False,
        model: torch.nn.Module | None = None,
    ) -> None:
        """``model``: generate with this already loaded model (the policy's own, in its process: the
        in_process hybrid engine) instead of loading ``model_path``; it is used where it lies, as it is."""
        from openrlhf.models.loading import load_model, load_processor, load_tokenizer

        if num_threads > 0 or engines_on_node > 0:  # a Ray actor: its share of the node's cores
            from openrlhf.utils.threads import set_num_threads

            set_num_threads(num_threads, engines_on_node)
        if generate_batch_size < 1:
            raise ValueError(f"HFRolloutEngine: generate_batch_size={generate_batch_size} must be >= 1")
        shared = model is not None
        if not shared:
            torch.manual_seed(seed)
        self.model_path = model_path
        self.device = next(model.parameters()).device if shared else resolve_device(device)
        self.generate_batch_size = generate_batch_size
        if not shared:
            # dtype "auto": float32 on CPU, the checkpoint's dtype on GPU (openrlhf.models.loading).
            model = load_model(model_path, dtype=dtype, trust_remote_code=trust_remote_code, device=self.device)
        self.tokenizer = load_tokenizer(model_path, padding_side="left", trust_remote_code=trust_remote_code)
        self.processor = load_processor(
            model_path, min_pixels=min_pixels, max_pixels=max_pixels, trust_remote_code=trust_remote_code
        )
        self.eos_ids = eos_token_ids(self.tokenizer, getattr(model, "generation_config", None))
        if not self.eos_ids:
            raise ValueError(f"{model_path}: neither the tokenizer nor generation_config.json names an eos token")
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.eos_ids[0]
        # The sampling params of each call are the whole sampler: drop the checkpoint's defaults.
        from openrlhf.models.loading import unwrap_model

        unwrap_model(model).generation_config = GenerationConfig(eos_token_id=self.eos_ids, pad_token_id=self.pad_id)
        self.model = model if shared else model.to(self.device).eval()
        if self.processor is not None and getattr(self.processor, "tokenizer", None) is not None:
            self.processor.tokenizer.padding_side = "left"
        # A VLM must never sample an image/video placeholder (vLLM: logit_bias, vllm_sampling_kwargs).
        self.banned_ids = vision_placeholder_ids(self.tokenizer) if self.processor is not None else []
        self._sync_group: SyncGroup | None = None
        self._asleep = False
        self.sleeps = self.wakes = 0
        # Partial rollouts: weight updates from a second actor thread land between decoding steps.
        self._switch = WeightSwitch()
        self._generation_lock = threading.Lock()  # one generation at a time (the seeded RNG is process-global)

    # ------------------------------------------------------------------ info

    def model_info(self) -> dict[str, Any]:
        param = next(self.model.parameters())
        return {
            "backend": "hf",
            "model_path": self.model_path,
            "device": str(self.device),
            "dtype": str(param.dtype).removeprefix("torch."),
            "multimodal": self.processor is not None,
            "num_threads": torch.get_num_threads(),
            "eos_token_ids": list(self.eos_ids),
        }

    def pid(self) -> int:
        import os

        return os.getpid()

    # ------------------------------------------------------------------ generation

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[list[GenerationOutput]]:
        """Per request, ``params.n`` sampled responses; deterministic given ``params.seed``."""
        results: list[list[GenerationOutput]] = [[] for _ in requests]
        for piece in self.generate_stream(requests, params):
            for index, outputs in piece:
                results[index] = outputs
        return results

    def generate_stream(self, requests: list[GenerationRequest], params: SamplingParams) -> Iterator[FinishedGroups]:
        """The groups finished by each ``generate_batch_size`` chunk of rows, after that chunk (text rows first,
        then image rows); the chunks and the RNG are generate()'s, so the responses are the same."""
        params.validate()
        self._check_requests(requests)
        if self._asleep:
            self.wake_up()
        text_items = [(i, s) for i, r in enumerate(requests) if not r.images for s in range(params.n)]
        image_items = [(i, s) for i, r in enumerate(requests) if r.images for s in range(params.n)]
        results: list[list[GenerationOutput | None]] = [[None] * params.n for _ in requests]
        missing = [params.n] * len(requests)
        chunks = [(chunk, self._generate_text_rows) for chunk in _chunks(text_items, self.generate_batch_size)]
        chunks += [(chunk, self._generate_image_rows) for chunk in _chunks(image_items, self.generate_batch_size)]
        with self._generation_lock, seeded_rng(params.seed, self.device):
            for chunk, run in chunks:
                with torch.no_grad(), self._switch.generating():
                    outputs = run([requests[i] for i, _ in chunk], params)
                finished = []
                for (i, s), out in zip(chunk, outputs, strict=True):
                    results[i][s] = out
                    missing[i] -= 1
                    if missing[i] == 0:
                        finished.append((i, results[i]))
                if finished:
                    yield finished  # type: ignore[misc]

    def _check_requests(self, requests: list[GenerationRequest]) -> None:
        image_token = getattr(self.processor, "image_token", None)
        for index, request in enumerate(requests):
            if request.images:
                if self.processor is None:
                    raise ValueError(
                        f"request {index}: has {len(request.images)} image(s) but {self.model_path} has no image "
                        "processor (a text-only model)"
                    )
                if not request.prompt_text:
                    raise ValueError(f"request {index}: an image row needs prompt_text (the chat-templated prompt)")
                if image_token and request.prompt_text.count(image_token) != len(request.images):
                    raise ValueError(
                        f"request {index}: prompt_text has {request.prompt_text.count(image_token)} {image_token} "
                        f"placeholder(s) for {len(request.images)} image(s)"
                    )
            elif not request.prompt_token_ids:
                raise ValueError(f"request {index}: empty prompt_token_ids")

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, row in enumerate(rows):
            ids[k, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[k, width - len(row) :] = 1
        return ids, mask

    def _generate_text_rows(self, rows: list[GenerationRequest], params: SamplingParams) -> list[GenerationOutput]:
        input_ids, attention_mask = self._left_pad([list(r.prompt_token_ids) for r in rows])
        return self._run_generate({"input_ids": input_ids, "attention_mask": attention_mask}, params)

    def _generate_image_rows(self, rows: list[GenerationRequest], params: SamplingParams) -> list[GenerationOutput]:
        images = [img.convert("RGB") if hasattr(img, "convert") else img for r in rows for img in r.images]
        inputs = self.processor(
            text=[r.prompt_text for r in rows],
            images=images,
            padding=True,
            return_tensors="pt",
        )
        return self._run_generate(dict(inputs), params)

    def _run_generate(self, inputs: dict[str, Any], params: SamplingParams) -> list[GenerationOutput]:
        dtype = next(self.model.parameters()).dtype
        inputs = {
            k: (v.to(self.device, dtype=dtype) if torch.is_floating_point(v) else v.to(self.device))
            for k, v in inputs.items()
            if isinstance(v, torch.Tensor)
        }
        prompt_length = inputs["input_ids"].shape[1]
        recorder = SamplerLogProbRecorder(params.temperature, prompt_length)
        safe_point = SafePoint(self._switch, prompt_length)
        out = self.model.generate(
            **inputs,
            generation_config=build_generation_config(params, self.eos_ids, self.pad_id),
            # The recorder runs first: it keeps log_softmax(z / T) over the whole vocabulary, the distribution
            # the trainer scores; the ban then removes placeholders from what is sampled.
            logits_processor=LogitsProcessorList([recorder, BanTokens(self.banned_ids), safe_point]),
        )
        sequences = out.sequences
        log_probs = recorder.log_probs(sequences).float().cpu()
        sequences = sequences.cpu()
        mask = inputs["attention_mask"].cpu().bool()
        outputs = []
        for row in range(sequences.shape[0]):
            prompt_ids = inputs["input_ids"][row].cpu()[mask[row]].tolist()
            ids, finish = trim_at_eos(sequences[row, prompt_length:].tolist(), self.eos_ids)
            outputs.append(
                GenerationOutput(
                    prompt_token_ids=prompt_ids,
                    output_token_ids=ids,
                    text=decode_response(self.tokenizer, ids),
                    log_probs=log_probs[row, : len(ids)].tolist(),
                    finish_reason=finish,
                    weight_switches=[at for at in safe_point.switched_at if at < len(ids)],
                )
            )
        return outputs

    # ------------------------------------------------------------------ weights

    def update_weights(self, named_tensors: NamedTensors) -> int:
        """Copy new policy weights in (names as the HF model, or with DeepSpeed's ``module.`` prefix); during a
        generation, at its next decoding step (partial rollouts)."""
        return self._switch.apply(lambda: load_named_tensors(self.model, named_tensors))

    def init_weight_sync_group(
        self,
        master_address: str,
        master_port: int,
        rank: int,
        world_size: int,
        group_name: str,
        backend: str = "gloo",
        timeout_s: float = 600.0,
    ) -> None:
        """Join the policy's weight-sync group as ``rank`` (>= 1; rank 0 is policy rank 0)."""
        if rank < 1:
            raise ValueError(f"init_weight_sync_group: engine rank must be >= 1 (0 is the sender), got {rank}")
        device = self.device if backend == "nccl" else torch.device("cpu")
        self._sync_group = create_sync_group(
            master_address, master_port, rank, world_size, group_name, backend, device=device, timeout_s=timeout_s
        )

    def receive_weights(self, meta: WeightMeta) -> int:
        """Receive the broadcasts of :func:`broadcast_named_tensors`, parameter by parameter, into the model;
        during a generation, at its next decoding step (partial rollouts)."""
        if self._sync_group is None:
            raise RuntimeError("receive_weights: call init_weight_sync_group first")
        return self._switch.apply(lambda: self._receive_weights(meta))

    @torch.no_grad()
    def _receive_weights(self, meta: WeightMeta) -> int:
        group = self._sync_group
        targets = dict(self.model.named_parameters(remove_duplicate=False))
        targets.update(dict(self.model.named_buffers(remove_duplicate=False)))
        count = 0
        for name, dtype, shape in meta:
            key = resolve_param_name(name, targets)
            target = targets.get(key) if key is not None else None
            direct = (
                target is not None
                and target.device == group.device
                and target.dtype == dtype_from_name(dtype)
                and list(target.shape) == list(shape)
                and target.is_contiguous()
            )
            if direct:  # receive straight into the parameter: no second copy
                group.broadcast(target.data, src=0)
                count += 1
            else:
                count += load_named_tensors(self.model, receive_named_tensors([(name, dtype, shape)], group))
        return count

    def close_weight_sync_group(self) -> None:
        self._sync_group = None

    @torch.no_grad()
    def update_weights_from_ipc(self, by_device: dict[str, Any]) -> int:
        """Colocated with a policy rank: load the weights it shared on this engine's device (ipc_weights)."""
        from openrlhf.rollout.ipc_weights import open_ipc_weights, pick_payload

        payload = pick_payload(by_device, self.device)
        index = self.device.index if self.device.type == "cuda" else None
        count = self._switch.apply(lambda: load_named_tensors(self.model, open_ipc_weights(payload, index)))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return count

    # ------------------------------------------------------------------ memory

    def sleep(self, level: int = 1) -> bool:
        """Colocated training is about to run: on GPU move the weights to host memory (vLLM's level-1 sleep
        frees the same); on the CPU there is nothing to free. Returns whether memory moved."""
        if self._asleep:
            return False
        self._asleep = True
        self.sleeps += 1
        if self.device.type != "cuda":
            return False
        self.model.to("cpu")
        torch.cuda.empty_cache()
        return True

    def wake_up(self, tags: list[str] | None = None) -> bool:
        """Back on the device before loading weights or generating (``tags`` as vLLM's; HF has one state)."""
        if not self._asleep:
            return False
        self._asleep = False
        self.wakes += 1
        if self.device.type == "cuda":
            self.model.to(self.device)
        return True

    def memory_state(self) -> dict[str, Any]:
        return {"asleep": self._asleep, "sleeps": self.sleeps, "wakes": self.wakes}

    def ping(self) -> bool:
        return True


def hf_rollout_actor_class():
    """The Ray actor form of :class:`HFRolloutEngine` (``ray.remote`` applied lazily, so import stays cheap)."""
    import ray

    global _HF_ROLLOUT_ACTOR
    if _HF_ROLLOUT_ACTOR is None:
        _HF_ROLLOUT_ACTOR = ray.remote(HFRolloutEngine)
    return _HF_ROLLOUT_ACTOR


_HF_ROLLOUT_ACTOR = None


def __getattr__(name: str) -> Any:
    if name == "HFRolloutActor":
        return hf_rollout_actor_class()
    raise AttributeError(name)
