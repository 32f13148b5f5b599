"""From a batch of prompts to training experience: generate, score, pad into tensors.

Steps 2-3 of a training step (DESIGN.md): the rollout engines generate n responses per prompt, the
reward source scores them; this module turns the result into an :class:`Experience` (log-probs and
advantages are added by the driver).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from openrlhf.config import Config
from openrlhf.data.sample import Sample
from openrlhf.rollout.base import GenerationOutput, GenerationRequest, SamplingParams
from openrlhf.workers.experience import Experience

if TYPE_CHECKING:
    from openrlhf.trainer.reward_client import RewardResult


@dataclass
class EncodedPrompt:
    """A prompt ready for an engine and for the policy's forward (with its images' tensors)."""

    sample: Sample
    request: GenerationRequest
    multimodal: dict[str, torch.Tensor] | None = None


@dataclass
class Rollout:
    """Everything one step produced before training: per response, its prompt and scores."""

    prompts: list[EncodedPrompt]
    outputs: list[GenerationOutput]  # len(prompts) * n, grouped by prompt
    n: int
    rewards: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    scores: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    components: dict[str, list[float]] = field(default_factory=dict)
    extra_logs: dict[str, float] = field(default_factory=dict)

    def prompt_of(self, row: int) -> EncodedPrompt:
        return self.prompts[row // self.n]


class PromptEncoder:
    """Chat template + tokenisation (+ image processing) of samples, done once in the driver."""

    def __init__(self, cfg: Config) -> None:
        from openrlhf.models.loading import load_processor, load_tokenizer

        self.cfg = cfg
        path = cfg.actor.model_name_or_path
        self.tokenizer = load_tokenizer(path, padding_side="left")
        self.processor = load_processor(path, min_pixels=cfg.data.min_pixels, max_pixels=cfg.data.max_pixels)

    @property
    def template_owner(self):
        return self.processor if self.processor is not None else self.tokenizer

    def encode(self, sample: Sample, images: list | None = None) -> EncodedPrompt:
        """The sample's prompt for an engine; ``images``: the sample's images already opened (PIL, in the order
        of its image parts, e.g. decoded from a request) instead of reading ``sample.images`` from disk."""
        from openrlhf.data.prompts import build_prompt_text
        from openrlhf.models.vlm_inputs import encode_prompt, take_multimodal

        text = build_prompt_text(sample, self.template_owner, self.cfg.data)
        if images is None:
            images = [_open_rgb(path, sample.where) for path in sample.images]
        if images and self.processor is None:
            raise ValueError(f"{sample.where}: the row has images but {self.cfg.actor.model_name_or_path} is text-only")
        encoded = encode_prompt(
            self.processor if images else self.tokenizer,
            text,
            images,
            max_length=self.cfg.data.prompt_max_len,
            where=sample.where,
        )
        ids = encoded["input_ids"][0].tolist()
        multimodal = take_multimodal(encoded)
        if multimodal is not None and "image_size" in sample.label_fields and "input_size" not in sample.label_fields:
            sample = _with_input_size(sample, multimodal["image_grid_thw"][0], self.processor)
        return EncodedPrompt(sample, GenerationRequest(text, ids, images), multimodal)

    def decode_response(self, output: GenerationOutput) -> str:
        """The response as OpenRLHF's remote-RM client sends it: decoded with special tokens kept."""
        return self.tokenizer.decode(output.output_token_ids, skip_special_tokens=False)


def _with_input_size(sample: Sample, grid_thw: torch.Tensor, processor) -> Sample:
    """A copy of a box-task sample whose label also carries ``input_size`` = [w, h] of the resized image the
    model sees (grid_w * patch_size, grid_h * patch_size), so the reward rescales boxes to ``image_size``."""
    import dataclasses

    patch = int(processor.image_processor.patch_size)
    input_size = [int(grid_thw[2]) * patch, int(grid_thw[1]) * patch]
    return dataclasses.replace(sample, label_fields={**sample.label_fields, "input_size": input_size})


def _open_rgb(path: str, where: str):
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{where}: cannot read image {path}: {exc}") from exc


def sampling_params(cfg: Config, seed: int, *, greedy: bool = False, n: int | None = None) -> SamplingParams:
    return SamplingParams(
        n=1 if greedy else (n or cfg.rollout.n_samples_per_prompt),
        temperature=0.0 if greedy else cfg.rollout.temperature,
        top_p=1.0 if greedy else cfg.rollout.top_p,
        top_k=-1 if greedy else cfg.rollout.top_k,
        max_new_tokens=cfg.rollout.max_new_tokens,
        seed=seed,
    )


def generate_pieces(
    engines: list, prompts: list[EncodedPrompt], params: SamplingParams
) -> Iterator[list[tuple[int, list[GenerationOutput]]]]:
    """Prompts dealt round-robin over the engines; yields (prompt index, its n outputs) for the groups each
    engine has finished, as they finish on any engine (``generate_stream`` on each, read as it streams).

    Engine i samples with ``engine_params(params, i)``: its own seed derived from the step's, from which the
    vLLM engine derives one per prompt (openrlhf/rollout/dispatch.py), so no two prompts share a stream.
    """
    from openrlhf.rollout.dispatch import engine_params
    from openrlhf.workers.in_driver import stream_calls

    if not prompts:
        return
    width = len(engines)
    calls = [
        (engine, "generate_stream", ([p.request for p in prompts[index::width]], engine_params(params, index)))
        for index, engine in enumerate(engines[: len(prompts)])
    ]
    for engine_index, piece in stream_calls(calls):
        yield [(engine_index + k * width, outputs) for k, outputs in piece]


def generate(engines: list, prompts: list[EncodedPrompt], params: SamplingParams) -> list[GenerationOutput]:
    """All outputs, grouped by prompt in prompt order (:func:`generate_pieces` gathered)."""
    per_prompt: list[list[GenerationOutput] | None] = [None] * len(prompts)
    for piece in generate_pieces(engines, prompts, params):
        for index, outputs in piece:
            per_prompt[index] = outputs
    missing = [i for i, outs in enumerate(per_prompt) if outs is None]
    if missing:
        raise RuntimeError(f"generate: the engines returned nothing for prompts {missing[:10]}")
    return [out for outs in per_prompt for out in outs]  # type: ignore[union-attr]


def score_groups(
    reward_source, encoder: PromptEncoder, prompts: list[EncodedPrompt], groups: list[list[GenerationOutput]]
) -> RewardResult:
    """The reward source's answer for the responses of ``groups`` (one list per prompt), in order."""
    queries, prompt_texts, labels = [], [], []
    for prompt, outputs in zip(prompts, groups, strict=True):
        label = prompt.sample.reward_label()
        for output in outputs:
            queries.append(prompt.request.prompt_text + encoder.decode_response(output))
            prompt_texts.append(prompt.request.prompt_text)
            labels.append(label)
    return reward_source.score(queries, prompt_texts, labels)


def build_experience(rollout: Rollout, pad_token_id: int) -> Experience:
    """Pad prompts on the left and responses on the right into [prompt | response] rows."""
    rows = len(rollout.outputs)
    prompt_len = max(len(rollout.prompt_of(r).request.prompt_token_ids) for r in range(rows))
    resp_len = max(1, max(len(o.output_token_ids) for o in rollout.outputs))
    sequences = torch.full((rows, prompt_len + resp_len), pad_token_id, dtype=torch.long)
    attention = torch.zeros((rows, prompt_len + resp_len), dtype=torch.long)
    response_mask = torch.zeros((rows, resp_len), dtype=torch.float32)
    sampler = torch.zeros((rows, resp_len), dtype=torch.float32)
    multimodal: list[dict[str, Any] | None] = []
    for r, output in enumerate(rollout.outputs):
        prompt = rollout.prompt_of(r)
        p_ids, o_ids = prompt.request.prompt_token_ids, output.output_token_ids
        sequences[r, prompt_len - len(p_ids) : prompt_len] = torch.tensor(p_ids)
        attention[r, prompt_len - len(p_ids) : prompt_len] = 1
        if o_ids:
            sequences[r, prompt_len : prompt_len + len(o_ids)] = torch.tensor(o_ids)
            attention[r, prompt_len : prompt_len + len(o_ids)] = 1
            response_mask[r, : len(o_ids)] = 1.0
            sampler[r, : len(output.logprobs)] = torch.tensor(output.logprobs, dtype=torch.float32)
        multimodal.append(prompt.multimodal)
    return Experience(sequences, attention, response_mask, multimodal, sampler_log_probs=sampler)
