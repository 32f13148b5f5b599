#!/usr/bin/env bash
# Shared by the recipe scripts (vlm_r1_rec.sh, omnirl_mixed.sh, r1v_counting.sh): source it, then call
#   launch_recipe NAME "$@"
# which runs `openrlhf-train --config configs/NAME.yaml` with the environment's MODEL, DATA, IMAGE_ROOT,
# REWARD_URL and OUTPUT_DIR (defaults set by the calling script). REWARD_URL empty: the driver starts the reward
# server on loopback with configs/reward_recipes_NAME.yaml. RAY_DASHBOARD_ADDRESS set: through `ray job submit`.
launch_recipe() {
  local name=$1
  shift
  local reward images launch
  if [[ -n "${REWARD_URL:-}" ]]; then
    reward=(--reward.remote_url "[$REWARD_URL]")
  else
    reward=(--reward.launch_local_server true --reward.server_config "configs/reward_recipes_${name}.yaml")
  fi
  images=()
  if [[ -n "${IMAGE_ROOT:-}" ]]; then
    images=(--data.image_roots "[$IMAGE_ROOT]")
  fi
  launch=()
  if [[ -n "${RAY_DASHBOARD_ADDRESS:-}" ]]; then
    launch=(ray job submit --address "$RAY_DASHBOARD_ADDRESS" --working-dir . --)
  fi
  "${launch[@]}" openrlhf-train --config "configs/${name}.yaml" \
    --actor.model_name_or_path "$MODEL" \
    --data.train_paths "[$DATA]" \
    --train.output_dir "${OUTPUT_DIR:-outputs/$name}" \
    "${images[@]}" "${reward[@]}" "$@"
}
