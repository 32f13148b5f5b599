#!/usr/bin/env bash
# VLM-R1 REC: GRPO on Qwen2.5-VL-3B-Instruct with the IoU reward (configs/vlm_r1_rec.yaml), one node of 8 GPUs.
# Runs openrlhf-train directly on the GPU node (the driver starts a local Ray there, or joins RAY_ADDRESS); with
# RAY_DASHBOARD_ADDRESS set it goes through `ray job submit --working-dir .` instead (README "Ray job submit").
#   MODEL       checkpoint folder or hub id              (Qwen/Qwen2.5-VL-3B-Instruct)
#   DATA        VLM-R1 jsonl, or a data_config YAML       (examples/data/vlm_r1_rec.jsonl, the tiny example)
#   IMAGE_ROOT  folder the jsonl's image paths start in   (examples/data/images; ignored by a data_config YAML)
#   REWARD_URL  a running reward server's /get_reward     (empty: the driver starts one on loopback with
#               configs/reward_recipes_vlm_r1_rec.yaml)
#   OUTPUT_DIR  (outputs/vlm_r1_rec)
# Any further arguments are config overrides, e.g. --train.max_steps 100 --vllm.num_engines 2.
#   DATA=/data/vlm_r1/refcoco_train.jsonl IMAGE_ROOT=/data/coco bash scripts/vlm_r1_rec.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-Qwen/Qwen2.5-VL-3B-Instruct}
DATA=${DATA:-examples/data/vlm_r1_rec.jsonl}
IMAGE_ROOT=${IMAGE_ROOT:-examples/data/images}
REWARD_URL=${REWARD_URL:-}
OUTPUT_DIR=${OUTPUT_DIR:-outputs/vlm_r1_rec}

# shellcheck source=scripts/recipe_launch.sh
source scripts/recipe_launch.sh
launch_recipe vlm_r1_rec "$@"
