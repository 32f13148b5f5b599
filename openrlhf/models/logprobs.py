"""Per-token log-probabilities (and entropies) of sequences under a causal LM or Qwen2.5-VL.

The same function scores responses for the old policy, the new policy and the reference model, so all
three see identical inputs: the same position ids (cumulative attention mask for LMs; Qwen2.5-VL's
M-RoPE ids from the model's own ``get_rope_index``) and the same ``pixel_values`` / ``image_grid_thw``.
Left padding, right padding or both give the values of an unpadded single-sample forward.

Memory: the log-softmax is never materialised. Per chunk of positions the logits are upcast to fp32 and
``log p(y) = z_y - logsumexp(z)`` is taken; with gradients each chunk runs under activation
checkpointing, so backward recomputes one chunk at a time instead of keeping fp32 copies of all logits.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from openrlhf.models.loading import is_vision_model, unwrap_model
from openrlhf.models.vlm_inputs import (
    build_mm_token_type_ids,
    check_image_tokens,
    concat_multimodal,
    select_multimodal,
    split_multimodal,
)

__all__ = [
    "compute_token_log_probs",
    "concat_multimodal",
    "entropy_from_logits",
    "forward_inputs",
    "generate_inputs",
    "log_probs_from_logits",
    "position_ids_for",
    "select_multimodal",
    "split_multimodal",
]

CHUNK_ELEMENTS = 1 << 25  # fp32 logits per chunk: 128 MiB


def _logprob_chunk(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    z = logits.float()
    if temperature != 1.0:
        z = z / temperature
    return z.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z, dim=-1)


def _entropy_chunk(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    z = logits.float()
    if temperature != 1.0:
        z = z / temperature
    return torch.logsumexp(z, dim=-1) - (torch.softmax(z, dim=-1) * z).sum(-1)


def _chunked(fn: Callable[..., torch.Tensor], logits: torch.Tensor, *others: torch.Tensor, chunk_elements: int):
    """Apply ``fn`` over ``[..., V]`` logits a block of positions at a time; result has ``logits.shape[:-1]``.

    All positions are flattened to ``[N, V]`` and cut with one ``split`` (its backward writes every chunk's
    gradient into one buffer; slicing row by row would materialise a full-size zero gradient per slice).
    Under autograd with non-fp32 logits each chunk runs under activation checkpointing, so backward keeps no
    fp32 copy of the logits; fp32 logits are upcast by nothing, so there is nothing to save by recomputing.
    """
    lead = logits.shape[:-1]
    vocab = logits.shape[-1]
    flat = logits.reshape(-1, vocab)
    flat_others = [o.reshape(-1) for o in others]
    if flat.shape[0] == 0:
        return flat.new_zeros(lead, dtype=torch.float32)
    per = max(1, chunk_elements // vocab)
    recompute = torch.is_grad_enabled() and logits.requires_grad and logits.dtype != torch.float32
    pieces = []
    for args in zip(flat.split(per), *(o.split(per) for o in flat_others), strict=True):
        pieces.append(checkpoint(fn, *args, use_reentrant=False) if recompute else fn(*args))
    out = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    return out.reshape(lead)


def log_probs_from_logits(
    logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0, *, chunk_elements: int = CHUNK_ELEMENTS
) -> torch.Tensor:
    """log p(y_t) = z_{t,y_t} - logsumexp_v z_{t,v}, with z = logits / temperature; fp32, shape of ``labels``."""
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels shape {tuple(labels.shape)} does not match logits {tuple(logits.shape)}[:-1]")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    fn = functools.partial(_logprob_chunk, temperature=float(temperature))
    return _chunked(fn, logits, labels, chunk_elements=chunk_elements)


def entropy_from_logits(
    logits: torch.Tensor, temperature: float = 1.0, *, chunk_elements: int = CHUNK_ELEMENTS
) -> torch.Tensor:
    """H_t = -sum_v p_v log p_v = logsumexp(z) - sum_v softmax(z)_v z_v, z = logits / temperature; fp32."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    fn = functools.partial(_entropy_chunk, temperature=float(temperature))
    return _chunked(fn, logits, chunk_elements=chunk_elements)


def _rope_index_fn(hf_model: torch.nn.Module) -> Callable[..., Any]:
    for holder in (getattr(hf_model, "model", None), hf_model):
        fn = getattr(holder, "get_rope_index", None)
        if callable(fn):
            return fn
    raise TypeError(f"{type(hf_model).__name__} has a vision tower but no get_rope_index (not a Qwen-VL model?)")


def _has_images(multimodal: dict[str, Any] | None) -> bool:
    return multimodal is not None and multimodal.get("pixel_values") is not None


def position_ids_for(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    multimodal: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Position ids that make a padded row equal to its unpadded self.

    Text: ``cumsum(mask) - 1`` (``[B, L]``). Images: Qwen2.5-VL's 3-D M-RoPE ids (``[3, B, L]``) from
    the model's ``get_rope_index``, computed on the unpadded tokens of each row.
    """
    if _has_images(multimodal):
        hf_model = unwrap_model(model)
        fn = _rope_index_fn(hf_model)
        config = hf_model.config
        kwargs: dict[str, Any] = {
            "image_grid_thw": multimodal["image_grid_thw"].to(input_ids.device),
            "attention_mask": attention_mask,
        }
        if "mm_token_type_ids" in inspect.signature(fn).parameters:
            kwargs["mm_token_type_ids"] = build_mm_token_type_ids(
                input_ids, config.image_token_id, getattr(config, "video_token_id", None)
            )
        position_ids, _ = fn(input_ids, **kwargs)
        return position_ids
    position_ids = attention_mask.long().cumsum(-1) - 1
    return position_ids.clamp_(min=0)


def forward_inputs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    multimodal: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``model(...)``: ids, mask, position ids and, with images, pixels and grids.

    Checks that every row's image tokens match its images before the model sees them.
    """
    hf_model = unwrap_model(model)
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
    if _has_images(multimodal):
        config = hf_model.config
        if not is_vision_model(config):
            raise ValueError(f"images were given but {type(hf_model).__name__} is a text-only model")
        check_image_tokens(
            input_ids,
            multimodal["image_grid_thw"],
            config.vision_config.spatial_merge_size,
            config.image_token_id,
            image_counts=multimodal.get("image_counts"),
        )
        kwargs["pixel_values"] = multimodal["pixel_values"].to(input_ids.device)
        kwargs["image_grid_thw"] = multimodal["image_grid_thw"].to(input_ids.device)
    kwargs["position_ids"] = position_ids_for(model, input_ids, attention_mask, multimodal)
    return kwargs


def generate_inputs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    multimodal: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``model.generate`` on a left-padded prompt batch, with images where given.

    Qwen2.5-VL's generate builds its M-RoPE ids from ``mm_token_type_ids`` (transformers >= 5.2x); they
    are derived from the ids here, so a batch generates exactly what each prompt generates alone.
    """
    kwargs = forward_inputs(model, input_ids, attention_mask, multimodal)
    kwargs.pop("position_ids")  # generate extends positions itself as tokens are added
    if "pixel_values" in kwargs:
        hf_model = unwrap_model(model)
        if "mm_token_type_ids" in inspect.signature(type(hf_model).forward).parameters:
            config = hf_model.config
            kwargs["mm_token_type_ids"] = build_mm_token_type_ids(
                input_ids, config.image_token_id, getattr(config, "video_token_id", None)
            )
    return kwargs


@functools.lru_cache(maxsize=32)
def _accepts_logits_to_keep(model_class: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def compute_token_log_probs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    num_response_tokens: int | None = None,
    multimodal: dict[str, Any] | None = None,
    temperature: float = 1.0,
    return_entropy: bool = False,
    entropy_grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(x_t | x_<t) of the tokens of ``input_ids`` ``[B, L]``, and optionally the entropy there.

    ``entropy_grad=False``: the entropy is a metric only (no entropy bonus), computed without autograd, so
    backward neither keeps nor recomputes a second pass over the logits.

    Returns ``[B, L-1]`` (tokens 1..L-1), or ``[B, R]`` for the last ``R = num_response_tokens`` tokens
    (then only R+1 positions of logits are computed). ``multimodal``: ``pixel_values``,
    ``image_grid_thw``, ``image_counts`` of these rows (see :mod:`openrlhf.models.vlm_inputs`). Values at
    padded positions are meaningless; mask them. ``model`` may be wrapped (DeepSpeed, peft).
    """
    if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"input_ids must be [B, L] and attention_mask the same shape; got {tuple(input_ids.shape)} "
            f"and {tuple(attention_mask.shape)}"
        )
    length = input_ids.shape[1]
    num = length - 1 if num_response_tokens is None else int(num_response_tokens)
    if not 1 <= num <= length - 1:
        raise ValueError(f"num_response_tokens must be in [1, {length - 1}] for sequences of {length}; got {num}")
    kwargs = forward_inputs(model, input_ids, attention_mask, multimodal)
    if num < length - 1 and _accepts_logits_to_keep(type(unwrap_model(model))):
        kwargs["logits_to_keep"] = num + 1
    output = model(**kwargs, use_cache=False)
    logits = output.logits[:, -(num + 1) : -1]
    labels = input_ids[:, -num:]
    log_probs = log_probs_from_logits(logits, labels, temperature)
    entropy = None
    if return_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = entropy_from_logits(logits if entropy_grad else logits.detach(), temperature)
    return log_probs, entropy
