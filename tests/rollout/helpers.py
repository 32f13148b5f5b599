"""Helpers shared by the rollout tests: requests from real chat templates, checkpoint variants, recomputation."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from openrlhf.rollout.base import GenerationRequest
from openrlhf.rollout.vllm_worker import WeightSyncWorkerExtension

PROMPTS = ["What is 3 + 4?", "Name a colour.", "Count to five.", "Is the sky blue? Answer yes or no."]


def chat_request(tokenizer, text: str, images: list | None = None) -> GenerationRequest:
    """A request as the driver builds it: chat-templated text, its token ids, and the images in order."""
    images = list(images or [])
    content = [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]
    messages = [{"role": "user", "content": content if images else text}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return GenerationRequest(prompt_text=prompt, prompt_token_ids=ids, images=images)


def random_image(seed: int, height: int = 56, width: int = 56) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def copy_checkpoint(src: Path, dst: Path) -> Path:
    dst = Path(dst)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def perturbed_checkpoint(src: Path, dst: Path, seed: int, scale: float = 0.5) -> Path:
    """A copy of ``src`` with Gaussian noise (``scale`` x each tensor's std) added to every weight."""
    from openrlhf.models.loading import load_model

    copy_checkpoint(src, dst)
    model = load_model(src, dtype="float32")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            std = float(param.std()) if param.numel() > 1 else 1.0
            param.add_(torch.randn(param.shape, generator=gen) * scale * (std or 1.0))
    model.save_pretrained(dst)
    return Path(dst)


def checkpoint_with_generation_config(src: Path, dst: Path, extra_eos: list[int] = (), **fields) -> Path:
    """A copy of ``src`` whose generation_config.json also declares ``extra_eos`` as eos ids, plus ``fields``."""
    copy_checkpoint(src, dst)
    path = Path(dst) / "generation_config.json"
    config = json.loads(path.read_text())
    eos = config.get("eos_token_id")
    eos = eos if isinstance(eos, list) else [eos]
    config["eos_token_id"] = [e for e in eos if e is not None] + list(extra_eos)
    config.update(fields)
    path.write_text(json.dumps(config))
    return Path(dst)


@torch.no_grad()
def teacher_forced_log_probs(model, prompt_ids, output_ids, temperature: float = 1.0, **extra) -> torch.Tensor:
    """log_softmax(logits / T) of the output tokens, from one full forward over prompt + output."""
    ids = torch.tensor([list(prompt_ids) + list(output_ids)])
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra).logits[0].float()
    t = temperature if temperature > 0 else 1.0
    start = len(prompt_ids) - 1
    logp = torch.log_softmax(logits[start : start + len(output_ids)] / t, dim=-1)
    return logp.gather(-1, torch.tensor(output_ids)[:, None]).squeeze(-1)


def run_ranks(*targets):
    """Run one callable per rank in its own thread; re-raise the first failure."""
    results, errors = {}, []

    def wrap(index, fn):
        try:
            results[index] = fn()
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i, fn)) for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return [results[i] for i in range(len(targets))]


class VllmStyleModel:
    """vLLM's model interface as the worker extension uses it: ``load_weights(weights=[(hf_name, tensor)])``
    (vllm/model_executor/models/qwen2.py), here copying into a Hugging Face model."""

    def __init__(self, hf_model):
        self.hf_model = hf_model

    def load_weights(self, weights):
        from openrlhf.rollout.weight_sync import load_named_tensors

        load_named_tensors(self.hf_model, weights)
        return {name for name, _ in weights}


class VllmWorkerBase:
    """What the extension uses of vLLM 0.33's GPU worker (``rank``, ``device``, ``model_runner.get_model()``;
    vllm/v1/worker/gpu_worker.py), on CPU around a Hugging Face model."""

    def __init__(self, rank: int, hf_model) -> None:
        self.rank = rank
        self.device = torch.device("cpu")
        model = VllmStyleModel(hf_model)
        self.model_runner = SimpleNamespace(get_model=lambda: model)

    @property
    def hf_model(self):
        return self.model_runner.get_model().hf_model


class CpuWorker(VllmWorkerBase, WeightSyncWorkerExtension):
    """The worker with the extension mixed in as vLLM does it: the extension class as an extra base."""
