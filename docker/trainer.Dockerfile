# The trainer for GPU nodes: CUDA PyTorch base, the project with its `gpu` extra (vLLM, flash-attn) and Ray.
#   docker build -f docker/trainer.Dockerfile -t openrlhf-r1-trainer .
#   docker run --gpus all --shm-size 16g --rm openrlhf-r1-trainer openrlhf-train --config configs/grpo.yaml ...
# Not built here (NVIDIA's base image cannot be had on the development machines); linted with hadolint in the suite.
# docker/trainer-cpu.Dockerfile is the same code without CUDA, built and run here (scripts/build_images.sh).
FROM pytorch/pytorch:2.9.1-cuda12.8-cudnn9-devel

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git wordnet-base wordnet-sense-index \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace/openrlhf-r1
COPY pyproject.toml README.md ./
COPY openrlhf ./openrlhf
COPY remote_rm ./remote_rm
COPY configs ./configs
COPY scripts ./scripts

# DeepSpeed compiles its ops just in time; flash-attn builds against the image's torch.
# The project's own pins live in pyproject.toml (the gpu extra pins vLLM and flash-attn).
ENV DS_BUILD_OPS=0 MAX_JOBS=8
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-build-isolation ".[reward,gpu]"

CMD ["openrlhf-train", "--help"]
