#!/usr/bin/env bash
# R1-V counting: GRPO on Qwen2-VL-2B-Instruct with format + numeric accuracy (configs/r1v_counting.yaml), one node
# of 8 GPUs. Runs openrlhf-train directly on the GPU node (the driver starts a local Ray there, or joins
# RAY_ADDRESS); with RAY_DASHBOARD_ADDRESS set it goes through `ray job submit --working-dir .` instead.
#   MODEL       checkpoint folder or hub id              (Qwen/Qwen2-VL-2B-Instruct)
#   DATA        R1-V rows: JSON list, jsonl or parquet    (/data/clevr_cogen_a_train/train.parquet: R1-V's CLEVR
#               counting set leonardPKU/clevr_cogen_a_train saved with datasets' to_parquet, images embedded)
#   IMAGE_ROOT  folder the rows' image paths start in     (empty: paths relative to the data file)
#   REWARD_URL  a running reward server's /get_reward     (empty: the driver starts one on loopback with
#               configs/reward_recipes_r1v_counting.yaml)
#   OUTPUT_DIR  (outputs/r1v_counting)
# Any further arguments are config overrides, e.g. --train.max_steps 100.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-Qwen/Qwen2-VL-2B-Instruct}
DATA=${DATA:-/data/clevr_cogen_a_train/train.parquet}
IMAGE_ROOT=${IMAGE_ROOT:-}
REWARD_URL=${REWARD_URL:-}
OUTPUT_DIR=${OUTPUT_DIR:-outputs/r1v_counting}

# shellcheck source=scripts/recipe_launch.sh
source scripts/recipe_launch.sh
launch_recipe r1v_counting "$@"
