"""Model loading (LMs and Qwen2.5-VL), tiny offline checkpoints, LoRA, and per-token log-probs."""
