"""Rollout engines behind one interface (base.py): HF generate on any device, vLLM on GPU, and weight sync.

- base.py: SamplingParams, GenerationRequest, GenerationOutput, RolloutEngine (the driver's view)
- hf_engine.py: HFRolloutEngine (+ its Ray actor form), the CPU default
- vllm_engine.py / vllm_worker.py: the vLLM engine and its worker extension (GPU only; vLLM imported lazily)
- weight_sync.py: policy rank 0 -> engines (torch.distributed broadcast, Ray object store, CUDA IPC)
- prompt_encoder.py: PromptEncoder, samples to engine requests (chat template, tokens, images)
- dispatch.py: the per-engine and per-prompt seeds of a step; factory.py: creating the engines a config asks for
- decoding.py / sampler_logprobs.py: response cutting and decoding; the sampler log-prob definition
"""

from openrlhf.rollout.base import GenerationOutput, GenerationRequest, RolloutEngine, SamplingParams

__all__ = ["GenerationOutput", "GenerationRequest", "RolloutEngine", "SamplingParams"]
