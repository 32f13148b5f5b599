#!/usr/bin/env bash
# Installs everything the README's commands need, on a fresh machine.
#   CPU machine: the CPU build of torch first (a plain `pip install torch` pulls several GB of CUDA).
#   GPU machine: INSTALL_GPU=1 bash scripts/install.sh also installs the `gpu` extra (vLLM, flash-attn).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip"

if ! python -c "import torch" 2>/dev/null; then
  echo "[install] torch 2.13.0 (install it yourself first to pick another build)"
  $PIP install torch==2.13.0
fi

# WordNet 3.0 for METEOR, from Debian's packages (nltk.download needs a network these machines lack).
if [ ! -f /usr/share/wordnet/data.noun ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "[install] WordNet 3.0 (Debian: wordnet-base, wordnet-sense-index)"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wordnet-base wordnet-sense-index >/dev/null
fi

EXTRAS="reward,dev"
if [ "${INSTALL_GPU:-0}" = 1 ]; then EXTRAS="$EXTRAS,gpu"; fi
# DeepSpeed builds its ops just in time; --no-build-isolation keeps its build on the torch installed above.
DS_BUILD_OPS=0 $PIP install --no-build-isolation -e ".[${EXTRAS}]"
echo "[install] done"
