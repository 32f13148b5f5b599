# The reward service (remote_rm) alone: slim Python, the `reward` extra only (no torch, no ray).
#   docker build -f docker/reward-server.Dockerfile -t openrlhf-reward-server .
#   docker run --rm -p 5000:5000 -e REMOTE_RM_TOKEN="$(openssl rand -hex 16)" openrlhf-reward-server   # built-in recipes
#   docker run --rm -p 5000:5000 -e REMOTE_RM_TOKEN=... -v $PWD/configs:/cfg openrlhf-reward-server \
#       --config /cfg/reward_recipes.yaml
# The server binds 0.0.0.0 in the container, so it requires a bearer token (REMOTE_RM_TOKEN; the trainer sends
# it with --reward.token_env REMOTE_RM_TOKEN) and refuses to start without one unless `--insecure` is appended.
# /health answers {"status": "ok"} without the token (the HEALTHCHECK below), details with it.
FROM python:3.11-slim-bookworm

# WordNet 3.0 for METEOR's synonyms, from Debian (nltk.download needs a network the servers may lack).
# Debian's archive keeps one version per release, so the packages are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends wordnet-base wordnet-sense-index \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY remote_rm ./remote_rm

# Only the reward extra's requirements (read from pyproject.toml), then the package without the trainer's
# dependencies.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['reward']))" > /tmp/reward-requirements.txt \
    && pip install --no-cache-dir -r /tmp/reward-requirements.txt \
    && pip install --no-cache-dir --no-deps . \
    && rm /tmp/reward-requirements.txt

# Prepare the nltk-readable WordNet copy now, so nothing is written or downloaded at run time.
ENV REMOTE_RM_CACHE_DIR=/opt/remote_rm_cache
RUN python -m remote_rm.wordnet \
    && useradd --create-home --uid 10001 rewards \
    && chown -R rewards /opt/remote_rm_cache

USER 10001
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
ENTRYPOINT ["openrlhf-reward-server", "--host", "0.0.0.0", "--port", "5000"]
