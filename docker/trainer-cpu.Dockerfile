# The trainer for machines without a GPU: the same code as docker/trainer.Dockerfile, with the CPU build of torch,
# no vLLM (rollouts use the transformers engine), DeepSpeed on its CPU accelerator and the reward service beside it.
#   bash scripts/build_images.sh trainer-cpu         (podman; see the script for a machine without a registry)
#   docker build -f docker/trainer-cpu.Dockerfile -t openrlhf-trainer-cpu .
#   docker run --rm --shm-size 4g openrlhf-trainer-cpu openrlhf-train      (the embedded GRPO demo)
FROM python:3.11-slim-bookworm

# g++: DeepSpeed compiles its shared-memory op on first use; WordNet 3.0 for METEOR.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ wordnet-base wordnet-sense-index \
    && rm -rf /var/lib/apt/lists/*

# torch 2.13.0, CPU build: from a mounted folder of wheels (TORCH_WHEEL_DIR) or PyTorch's CPU index; a plain
# `pip install torch` would pull the CUDA build and several GB of CUDA libraries.
ARG TORCH_WHEEL_DIR=""
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN if [ -n "$TORCH_WHEEL_DIR" ]; then pip install --no-cache-dir --find-links "$TORCH_WHEEL_DIR" "torch==2.13.0+cpu"; \
    else pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "torch==2.13.0"; fi

WORKDIR /workspace/openrlhf-r1
COPY pyproject.toml README.md ./
COPY openrlhf ./openrlhf
COPY remote_rm ./remote_rm
COPY examples ./examples
COPY scripts ./scripts

ENV DS_BUILD_OPS=0 TORCH_EXTENSIONS_DIR=/opt/torch_extensions REMOTE_RM_CACHE_DIR=/opt/remote_rm_cache
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-build-isolation ".[reward]" \
    && python -m remote_rm.wordnet

CMD ["openrlhf-train", "--help"]
