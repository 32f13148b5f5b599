"""The model behind ``openrlhf-serve``: the trainer's prompt encoder and rollout engine, concurrent requests batched.

A request goes the way a training prompt goes: its messages become a :class:`~openrlhf.data.sample.Sample`
(:func:`openrlhf.serve.messages.to_sample`), :class:`openrlhf.rollout.prompt_encoder.PromptEncoder` applies the
model's chat template and image processor (no system prompt or task suffix is added: the request's messages
are the whole prompt), and the rollout engine (:func:`openrlhf.eval.checkpoint.make_engine`: ``backend`` hf, vllm
or auto, as ``rollout.backend`` in training; vLLM with ``tensor_parallel_size`` workers) samples n responses;
requests that wait together with equal sampling parameters share one engine call
(:class:`openrlhf.serve.batching.RequestBatcher`, up to ``max_batch_size`` prompts).

Sampling: temperature T (default 1; 0 = greedy), top_p, top_k, max_new_tokens = min(max_completion_tokens or
max_tokens or cap, cap) with cap = ``max_new_tokens`` of the server, and the request's seed (absent: the
running RNG). ``stop`` strings are applied to the decoded text: a choice is cut before the first occurrence of
any of them and its finish_reason becomes "stop" (the engine still generates up to eos or the cap).
usage: prompt_tokens = the prompt's tokens (image tokens included), completion_tokens = sum over the n choices
of the tokens generated (an eos token included), total_tokens = their sum.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from openrlhf.rollout.base import GenerationOutput, SamplingParams
from openrlhf.serve.batching import RequestBatcher
from openrlhf.serve.messages import to_sample
from openrlhf.serve.schema import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ModelCard,
    RequestError,
    Usage,
)


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` before the earliest occurrence of any stop string, and whether one occurred."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def _context_length(path: Path, trust_remote_code: bool) -> int:
    """The checkpoint's longest sequence (its text config's ``max_position_embeddings``; 0 when it names none):
    what a vLLM engine is sized for (prompt and completion together)."""
    from openrlhf.models.loading import load_config

    return int(getattr(load_config(path, trust_remote_code).get_text_config(), "max_position_embeddings", 0) or 0)


class ChatModel:
    """One checkpoint behind the chat completions API; :meth:`complete` is blocking and thread-safe (requests
    from many threads are batched)."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str | None = None,
        max_new_tokens: int = 1024,
        max_prompt_tokens: int = 4096,
        max_n: int = 16,
        dtype: str = "auto",
        num_threads: int = 0,
        seed: int = 0,
        trust_remote_code: bool = False,
        max_batch_size: int = 32,
        backend: str = "hf",
        tensor_parallel_size: int = 1,
        enforce_eager: bool = False,
    ) -> None:
        from openrlhf.config import Config
        from openrlhf.eval.checkpoint import make_engine
        from openrlhf.rollout.prompt_encoder import PromptEncoder

        path = Path(model_path)
        if not path.is_dir():
            raise FileNotFoundError(f"--model {model_path}: no such folder (a Hugging Face checkpoint folder)")
        self.name = name or path.resolve().name
        self.max_new_tokens, self.max_n = max_new_tokens, max_n
        cfg = Config.model_validate(
            {
                "actor": {"model_name_or_path": str(path), "dtype": dtype, "trust_remote_code": trust_remote_code},
                "data": {"prompt_max_len": max_prompt_tokens},
                "rollout": {"backend": backend, "max_new_tokens": max_new_tokens},
                "vllm": {
                    "tensor_parallel_size": tensor_parallel_size,
                    "max_model_len": _context_length(path, trust_remote_code),
                    "enforce_eager": enforce_eager,
                },
                "train": {"seed": seed, "num_threads_per_worker": num_threads},
            }
        )
        self.encoder = PromptEncoder(cfg)
        self.engine = make_engine(cfg)
        self.created = int(time.time())
        self._encode_lock = threading.Lock()  # one tokenizer / image processor, used by every request thread
        self.batcher = RequestBatcher(self.engine.generate, max_batch_size)

    def card(self) -> ModelCard:
        return ModelCard(id=self.name, created=self.created)

    def sampling_params(self, request: ChatCompletionRequest) -> SamplingParams:
        """The engine's sampling parameters for ``request`` (a 400 naming the field when one is out of range)."""
        if request.stream:
            raise RequestError(400, "stream", "stream: streaming is not supported; leave it out or send false")
        n = request.n or 1
        if n > self.max_n:
            raise RequestError(400, "n", f"n: {n} is over this server's limit of {self.max_n} (--max-n)")
        if request.top_k == 0:
            raise RequestError(400, "top_k", "top_k: 0 is not allowed; -1 (or leaving it out) turns it off")
        asked = request.max_completion_tokens or request.max_tokens or self.max_new_tokens
        temperature = 1.0 if request.temperature is None else request.temperature
        params = SamplingParams(
            n=n,
            temperature=temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            top_k=-1 if request.top_k is None else request.top_k,
            max_new_tokens=min(asked, self.max_new_tokens),
            seed=request.seed,
        )
        try:
            params.validate()
        except ValueError as exc:
            raise RequestError(400, None, str(exc)) from None
        return params

    def _encode(self, request: ChatCompletionRequest):
        sample, images = to_sample(request.messages)
        try:
            return self.encoder.encode(sample, images=images).request
        except ValueError as exc:  # too long, images for a text-only model, a template that refuses the turns
            message = str(exc).removeprefix(f"{sample.where}: ")
            raise RequestError(400, "messages", f"messages: {message}") from None

    def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        """Generate the request's n choices (blocking; batched with other requests waiting meanwhile)."""
        if request.model != self.name:
            message = f"The model `{request.model}` does not exist (this server serves `{self.name}`)"
            raise RequestError(404, "model", message, code="model_not_found")
        params = self.sampling_params(request)
        stops = request.stop_strings()
        with self._encode_lock:
            prompt = self._encode(request)
        outputs: list[GenerationOutput] = self.batcher.submit(prompt, params)
        choices = []
        for index, out in enumerate(outputs):
            text, stopped = cut_at_stop(out.text, stops)
            finish = "stop" if stopped or out.finish_reason == "stop" else "length"
            choices.append(Choice(index=index, message=AssistantMessage(content=text), finish_reason=finish))
        prompt_tokens = len(outputs[0].prompt_token_ids)
        completion_tokens = sum(len(out.output_token_ids) for out in outputs)
        return ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=self.name,
            choices=choices,
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )
