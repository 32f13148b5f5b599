#!/usr/bin/env bash
# R1-Reward: StableReinforce on Qwen2.5-VL-7B-Instruct with the preference reward and the consistency judge
# (configs/r1_reward.yaml), one node of 8 GPUs in the hybrid engine (train.colocate_all).
# This script starts the reward server itself, on this node's loopback, with the judge of
# configs/reward_recipes_r1_reward.yaml pointed at $JUDGE_URL / $JUDGE_MODEL, checks that the judge answers, then
# runs openrlhf-train directly here (the driver starts a local Ray, or joins RAY_ADDRESS when this is the head
# node); the server stops when the run ends. It does not go through `ray job submit`: the driver must reach the
# loopback server (to run elsewhere, start the server on a reachable host and pass its URL as REWARD_URL).
#   MODEL         checkpoint folder or hub id                (Qwen/Qwen2.5-VL-7B-Instruct)
#   DATA          R1-Reward jsonl                             (examples/data/r1_reward.jsonl, the tiny example)
#   IMAGE_ROOT    folder the rows' image paths start in       (empty: paths relative to the data file)
#   JUDGE_URL     the judge's OpenAI-compatible /v1 root      (http://judge-host:8000/v1, e.g.
#                 `vllm serve Qwen/Qwen2.5-VL-7B-Instruct --port 8000` on another machine: the 8 GPUs here train)
#   JUDGE_MODEL   model name on the judge server              (empty: the first one it lists)
#   JUDGE_API_KEY the judge's API key                         (EMPTY, what vLLM accepts without --api-key)
#   JUDGE_CHECK   1: stop unless $JUDGE_URL/models answers    (1; 0 skips the check)
#   RM_PORT       the reward server's port                    (5000)
#   RM_WORKERS    its scoring processes                       (4)
#   REWARD_URL    use this running server instead of starting one (its judge is its own business)
#   OUTPUT_DIR    (outputs/r1_reward; the server's recipes and log go there too)
# Any further arguments are config overrides, e.g. --train.max_steps 100.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-Qwen/Qwen2.5-VL-7B-Instruct}
DATA=${DATA:-examples/data/r1_reward.jsonl}
IMAGE_ROOT=${IMAGE_ROOT:-}
JUDGE_URL=${JUDGE_URL:-http://judge-host:8000/v1}
JUDGE_MODEL=${JUDGE_MODEL:-}
export JUDGE_API_KEY=${JUDGE_API_KEY:-EMPTY}
JUDGE_CHECK=${JUDGE_CHECK:-1}
RM_PORT=${RM_PORT:-5000}
RM_WORKERS=${RM_WORKERS:-4}
REWARD_URL=${REWARD_URL:-}
OUTPUT_DIR=${OUTPUT_DIR:-outputs/r1_reward}
mkdir -p "$OUTPUT_DIR"

if [[ -z "$REWARD_URL" ]]; then
  if [[ "$JUDGE_CHECK" == 1 ]]; then
    python - "$JUDGE_URL" <<'PY'
import json, os, sys, urllib.request
url = sys.argv[1].rstrip("/") + "/models"
request = urllib.request.Request(url, headers={"Authorization": f"Bearer {os.environ['JUDGE_API_KEY']}"})
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        models = [m.get("id") for m in json.load(response).get("data", [])]
except Exception as exc:  # noqa: BLE001 - any failure means no judge
    sys.exit(f"r1_reward.sh: the judge at {url} does not answer ({exc}); set JUDGE_URL (or JUDGE_CHECK=0)")
print(f"r1_reward.sh: judge {url} serves {models}")
PY
  fi
  # The recipes with the judge filled in (the server reads no environment for base_url / model).
  RECIPES="$OUTPUT_DIR/reward_recipes.yaml"
  python - configs/reward_recipes_r1_reward.yaml "$RECIPES" "$JUDGE_URL" "$JUDGE_MODEL" <<'PY'
import sys, yaml
src, dst, url, model = sys.argv[1:5]
with open(src) as f:
    config = yaml.safe_load(f)
config["judge"].update(base_url=url, model=model)
with open(dst, "w") as f:
    yaml.safe_dump(config, f, sort_keys=False)
PY
  openrlhf-reward-server --config "$RECIPES" --check >/dev/null
  openrlhf-reward-server --host 127.0.0.1 --port "$RM_PORT" --config "$RECIPES" --workers "$RM_WORKERS" \
    >>"$OUTPUT_DIR/reward_server.log" 2>&1 &
  RM_PID=$!
  trap 'kill "$RM_PID" 2>/dev/null || true; wait "$RM_PID" 2>/dev/null || true' EXIT
  healthy=0
  for _ in $(seq 120); do
    if python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$RM_PORT/health', timeout=2)" 2>/dev/null; then
      healthy=1
      break
    fi
    if ! kill -0 "$RM_PID" 2>/dev/null; then
      echo "r1_reward.sh: the reward server exited; see $OUTPUT_DIR/reward_server.log" >&2
      tail -n 20 "$OUTPUT_DIR/reward_server.log" >&2
      exit 1
    fi
    sleep 1
  done
  if [[ "$healthy" != 1 ]]; then
    echo "r1_reward.sh: the reward server did not answer /health in 120 s; see $OUTPUT_DIR/reward_server.log" >&2
    exit 1
  fi
  REWARD_URL=http://127.0.0.1:$RM_PORT/get_reward
fi
images=()
if [[ -n "$IMAGE_ROOT" ]]; then
  images=(--data.image_roots "[$IMAGE_ROOT]")
fi

openrlhf-train --config configs/r1_reward.yaml \
  --actor.model_name_or_path "$MODEL" \
  --data.train_paths "[$DATA]" \
  --train.output_dir "$OUTPUT_DIR" \
  --reward.remote_url "[$REWARD_URL]" \
  "${images[@]}" "$@"
