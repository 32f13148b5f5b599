#!/usr/bin/env bash
# OmniRL's mixed text/image generative run: GRPO on Qwen2.5-VL-7B-Instruct with format + BLEU/ROUGE/METEOR
# (configs/omnirl_mixed.yaml), one node of 8 GPUs. Runs openrlhf-train directly on the GPU node (the driver starts
# a local Ray there, or joins RAY_ADDRESS); with RAY_DASHBOARD_ADDRESS set it goes through
# `ray job submit --working-dir .` instead.
#   MODEL       checkpoint folder or hub id              (Qwen/Qwen2.5-VL-7B-Instruct)
#   DATA        OmniRL / R1-V JSON list or jsonl          (examples/data/omnirl_mixed.json, the tiny example)
#   IMAGE_ROOT  folder the rows' image paths start in     (empty: paths relative to the data file)
#   REWARD_URL  a running reward server's /get_reward     (empty: the driver starts one on loopback with
#               configs/reward_recipes_omnirl_mixed.yaml; METEOR wants WordNet: apt-get install wordnet-base)
#   OUTPUT_DIR  (outputs/omnirl_mixed)
# Any further arguments are config overrides, e.g. --train.max_steps 100.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-Qwen/Qwen2.5-VL-7B-Instruct}
DATA=${DATA:-examples/data/omnirl_mixed.json}
IMAGE_ROOT=${IMAGE_ROOT:-}
REWARD_URL=${REWARD_URL:-}
OUTPUT_DIR=${OUTPUT_DIR:-outputs/omnirl_mixed}

# shellcheck source=scripts/recipe_launch.sh
source scripts/recipe_launch.sh
launch_recipe omnirl_mixed "$@"
