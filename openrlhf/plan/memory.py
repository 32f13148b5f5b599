"""Memory estimates, in bytes, each with its formula. Pure arithmetic: no torch, no Ray.

Symbols: Ψ parameters, Ψ_t trainable parameters, N data-parallel ranks, L layers, h hidden size, I FFN
width, V vocabulary, n_kv KV heads, d head size, p bytes per parameter / activation value (2 in bf16,
4 in fp32), T tokens of a micro batch (micro batch x padded row length), R response tokens of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from openrlhf.plan.model import ModelSpec

GB = 1e9

# Per process on a GPU: the CUDA context, cuBLAS workspaces and NCCL buffers (rule of thumb).
CUDA_CONTEXT_GB = 0.5
# Inside vLLM's share besides weights and KV cache: CUDA graphs and the profiled activation peak.
VLLM_OVERHEAD_GB = 2.0
# DeepSpeed's default stage3_prefetch_bucket_size (parameters gathered ahead of use under ZeRO-3).
ZERO3_PREFETCH_PARAMS = 5e7


@dataclass(frozen=True)
class ModelStates:
    """Bytes per GPU of one training rank's model states (``host``: what adam_offload keeps in host memory)."""

    weights: float
    grads: float
    optimizer: float
    host: float = 0.0

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.optimizer


def precision_bytes(bf16: bool) -> tuple[int, int, int]:
    """(p, g, k) bytes per parameter for weights, gradients and optimizer states.

    bf16 mixed precision (ZeRO paper): p = 2, g = 2, k = 12 (fp32 master copy + Adam m and v, 4 + 4 + 4).
    fp32 training: p = 4, g = 4, k = 8 (Adam m and v; the weights are their own master copy).
    Both total 16 bytes per trainable parameter.
    """
    return (2, 2, 12) if bf16 else (4, 4, 8)


def model_states_bytes(
    num_params: float,
    trainable_params: float,
    *,
    zero_stage: int,
    dp_world: int,
    bf16: bool,
    adam_offload: bool = False,
) -> ModelStates:
    """One rank's model states under ZeRO (Rajbhandari et al. 2020), with (p, g, k) = :func:`precision_bytes`:

        weights   = p·Ψ   / (N if stage = 3 else 1)
        grads     = g·Ψ_t / (N if stage >= 2 else 1)
        optimizer = k·Ψ_t / (N if stage >= 1 else 1)    (in host memory instead with adam_offload, stage >= 1)

    7e9 parameters in bf16, stage 3 over N = 8: (2 + 2 + 12)·7e9 / 8 = 14 GB; stage 0 on one GPU: 112 GB.
    LoRA: Ψ_t = the adapters' parameters, so grads and optimizer states are the adapters' only.
    """
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"zero_stage must be 0-3, got {zero_stage}")
    n = max(1, dp_world)
    p, g, k = precision_bytes(bf16)
    weights = p * num_params / (n if zero_stage == 3 else 1)
    grads = g * trainable_params / (n if zero_stage >= 2 else 1)
    optimizer = k * trainable_params / (n if zero_stage >= 1 else 1)
    if adam_offload and zero_stage >= 1:
        return ModelStates(weights, grads, 0.0, host=optimizer)
    return ModelStates(weights, grads, optimizer)


def zero3_gather_bytes(model: ModelSpec, bf16: bool) -> float:
    """ZeRO-3 working set: the largest module gathered whole for its forward/backward, plus the prefetch.

        gathered = p·(max(V·h, Ψ_layer) + 5e7),   Ψ_layer = (Ψ - 2·V·h) / L

    (with stage3_param_persistence_threshold = 0 nothing stays gathered between uses).
    """
    p = precision_bytes(bf16)[0]
    per_layer = max(0.0, model.num_params - model.vision_params - 2 * model.embedding_params) / model.num_layers
    return p * (max(model.embedding_params, per_layer) + ZERO3_PREFETCH_PARAMS)


def layer_activation_bytes_per_token(model: ModelSpec, bf16: bool) -> float:
    """What one decoder layer keeps for backward, per token: a = (17·h + 8·I)·p/2 bytes.

    Korthikanti et al. 2022 (34·h per token and layer for a 4h GELU MLP in 16-bit) with fused/flash
    attention (no s² term) and a SwiGLU MLP: attention 11·h, two norms 4·h, MLP 2·h + 8·I (its input, and
    gate, up, act(gate), product of width I), doubled in fp32.
    """
    p = precision_bytes(bf16)[0]
    return (17 * model.hidden_size + 8 * model.intermediate_size) * p / 2


def activation_bytes(
    model: ModelSpec,
    *,
    micro_batch: int,
    seq_len: int,
    response_len: int,
    training: bool,
    checkpointing: bool,
    bf16: bool,
) -> float:
    """Activations of one micro batch: T = micro_batch·seq_len tokens, R = micro_batch·(response_len + 1).

        training, no checkpointing:  T·L·a            + 2·R·V·p
        training, checkpointing:     T·(L·h·p + a)    + 2·R·V·p   (layer inputs kept; one layer recomputed)
        forward without gradients:   T·a              + R·V·p     (one layer live at a time)

    a = :func:`layer_activation_bytes_per_token`. Logits exist only at response positions (``logits_to_keep``)
    in the model's dtype; training adds their gradient. The log-softmax is chunked (openrlhf/models/logprobs.py)
    and not counted. The vision tower's activations are not counted.
    """
    p = precision_bytes(bf16)[0]
    a = layer_activation_bytes_per_token(model, bf16)
    tokens = micro_batch * seq_len
    response = micro_batch * (response_len + 1)
    logits = response * model.vocab_size * p
    if not training:
        return tokens * a + logits
    if checkpointing:
        return tokens * (model.num_layers * model.hidden_size * p + a) + 2 * logits
    return tokens * model.num_layers * a + 2 * logits


def kv_bytes_per_token(model: ModelSpec, tensor_parallel: int = 1, kv_bytes: int = 2) -> float:
    """KV cache per token on one GPU of an engine: 2 (K and V) · L · ceil(n_kv / tp) · d · kv_bytes.

    KV heads are split over tensor-parallel ranks (replicated when n_kv < tp). bf16 KV: kv_bytes = 2.
    """
    heads = math.ceil(model.num_kv_heads / max(1, tensor_parallel))
    return 2.0 * model.num_layers * heads * model.head_dim * kv_bytes


@dataclass(frozen=True)
class VllmMemory:
    """One vLLM engine's share on each of its GPUs (bytes) and what its KV cache holds."""

    share: float
    weights: float
    overhead: float
    kv_cache: float
    kv_tokens: int
    max_model_len: int
    sequences_per_step: int

    @property
    def kv_sequences(self) -> int:
        """Full-length sequences the KV cache holds at once."""
        return self.kv_tokens // max(1, self.max_model_len)


def vllm_memory(
    model: ModelSpec,
    *,
    gpu_memory_gb: float,
    utilization: float,
    tensor_parallel: int,
    max_model_len: int,
    sequences_per_step: int,
) -> VllmMemory:
    """vLLM takes its share at start; weights and KV cache live inside it:

        share   = gpu_memory_utilization · M
        weights = 2·Ψ / tp                  (bf16 serving weights, split over tensor-parallel ranks)
        kv      = share - weights - 2 GB     (CUDA graphs and profiled activations: VLLM_OVERHEAD_GB)
        tokens  = kv / :func:`kv_bytes_per_token`

    vLLM refuses to start when kv <= 0 or tokens < max_model_len; fewer tokens than a step's sequences x
    max_model_len only means fewer sequences run at once.
    """
    share = utilization * gpu_memory_gb * GB
    weights = 2.0 * model.num_params / max(1, tensor_parallel)
    overhead = VLLM_OVERHEAD_GB * GB
    kv = share - weights - overhead
    tokens = int(max(0.0, kv) // kv_bytes_per_token(model, tensor_parallel))
    return VllmMemory(share, weights, overhead, kv, tokens, max_model_len, sequences_per_step)


def hf_engine_bytes(model: ModelSpec, *, batch: int, max_model_len: int, weight_bytes: int = 2) -> tuple[float, float]:
    """(weights, generation cache) of an HF rollout engine on one GPU:

    weights = weight_bytes·Ψ
    cache   = batch·max_model_len·kv_bytes_per_token(tp=1) + batch·V·4   (KV cache, fp32 last logits)
    """
    weights = weight_bytes * model.num_params
    cache = batch * max_model_len * kv_bytes_per_token(model, 1) + batch * model.vocab_size * 4
    return weights, cache
