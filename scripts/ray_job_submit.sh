#!/usr/bin/env bash
# Submit a training run to a Ray cluster. Start the head first (on the head node):
#   ray start --head --num-gpus 8
# Ray 2.60 turns on token authentication by default; for a local single-user cluster either export the
# head's token to the client (RAY_AUTH_MODE=token and the token the head printed), or start the head with
# authentication disabled (RAY_AUTH_MODE=disabled ray start --head ...). See README "Ray job submit".
set -euo pipefail
ADDRESS=${RAY_DASHBOARD_ADDRESS:-http://127.0.0.1:8265}
ray job submit --address "$ADDRESS" --working-dir . -- \
  openrlhf-train --config configs/grpo.yaml \
  --actor.model_name_or_path "${MODEL:-/models/Qwen2.5-VL-3B-Instruct}" \
  --data.train_paths "[${DATA:-/data/train.jsonl}]" \
  --reward.remote_url "[${REWARD_URL:-http://127.0.0.1:5000/get_reward}]" \
  --rollout.backend vllm "$@"
# configs/grpo.yaml is the hybrid engine on one node of 8 GPUs (policy, reference and 8 vLLM engines colocated,
# weights by CUDA IPC, both sides sleeping in turn). The planner checks the layout before any worker starts;
# see it without a cluster: openrlhf-train --config configs/grpo.yaml --plan --plan-cluster 1x8x80
