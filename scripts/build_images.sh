#!/usr/bin/env bash
# Build the project's images with podman, from Debian's archive alone (no image registry is needed).
#
#   bash scripts/build_images.sh [reward|trainer-cpu|all]      (default: reward)
#
# reward       docker/reward-server.Dockerfile  -> localhost/openrlhf-reward-server
# trainer-cpu  docker/trainer-cpu.Dockerfile    -> localhost/openrlhf-trainer-cpu
# The CUDA trainer image (docker/trainer.Dockerfile) needs NVIDIA's base image and is not built here.
#
# Both Dockerfiles start FROM python:3.11-slim-bookworm. Where no registry is reachable, that name is given to a
# base made here with mmdebstrap (Debian bookworm's python3 is 3.11, with its headers as in the real image: DeepSpeed
# compiles against them) and imported into podman; a base that is
# already there is used as is. Environment:
#   IMAGE_STORE=DIR    private podman storage (DIR/root, DIR/run) instead of the system's; tests use this
#   INSTALL_TOOLS=1    apt-get install podman and mmdebstrap when missing (root only)
#   DEBIAN_MIRROR=URL  where mmdebstrap fetches from (default: this machine's first Debian source)
#   TORCH_WHEEL_DIR=D  trainer-cpu: a folder holding a CPU torch wheel, mounted into the build (default: /opt/wheels
#                      when it holds one); without it torch comes from download.pytorch.org's CPU index
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT="${1:-reward}"
case "$WHAT" in reward|trainer-cpu|all) ;; *) echo "build_images.sh: unknown image '$WHAT' (reward, trainer-cpu, all)" >&2; exit 2 ;; esac
BASE=docker.io/library/python:3.11-slim-bookworm

if ! command -v podman >/dev/null || ! command -v mmdebstrap >/dev/null; then
  if [ "${INSTALL_TOOLS:-0}" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[images] installing podman and mmdebstrap (apt)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc uidmap slirp4netns \
      containernetworking-plugins golang-github-containers-common iptables mmdebstrap >/dev/null
  else
    echo "build_images.sh: podman and mmdebstrap are needed (Debian: apt-get install podman mmdebstrap runc; or INSTALL_TOOLS=1 as root)" >&2
    exit 3
  fi
fi

# podman settings that work on these machines (see docs/deployment.md): root cannot raise the open-file limit to
# podman's default, crun refuses a mixed cgroup layout, so runc and cgroupfs.
WORK="${IMAGE_STORE:-${TMPDIR:-/tmp}/openrlhf-images}"
mkdir -p "$WORK"
cat > "$WORK/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
export CONTAINERS_CONF="$WORK/containers.conf"
PODMAN=(podman)
if [ -n "${IMAGE_STORE:-}" ]; then PODMAN=(podman --root "$IMAGE_STORE/root" --runroot "$IMAGE_STORE/run"); fi
# pip inside a build reaches the package index over HTTPS with the host's CA bundle (a proxy's CA may be in it)
CA=/etc/ssl/certs/ca-certificates.crt
BUILD=("${PODMAN[@]}" build --pull=never --network host --format docker)
if [ -f "$CA" ]; then BUILD+=(-v "$CA:$CA:ro"); fi

if ! "${PODMAN[@]}" image exists "$BASE"; then
  MIRROR="${DEBIAN_MIRROR:-}"
  if [ -z "$MIRROR" ]; then
    MIRROR=$( (grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}') || true)
    [ -n "$MIRROR" ] || MIRROR=$( (grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}') || true)
    [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
  fi
  echo "[images] base $BASE: Debian bookworm from $MIRROR (mmdebstrap)"
  mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-dev,python3-pip,python3-venv,python-is-python3,ca-certificates,passwd \
    --customize-hook='rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED' \
    --customize-hook='ln -sf pip3 "$1"/usr/bin/pip' \
    bookworm "$WORK/rootfs.tar" "deb $MIRROR bookworm main"
  "${PODMAN[@]}" import --change 'CMD ["python3"]' "$WORK/rootfs.tar" "$BASE" >/dev/null
  rm -f "$WORK/rootfs.tar"
fi

if [ "$WHAT" = reward ] || [ "$WHAT" = all ]; then
  echo "[images] openrlhf-reward-server"
  "${BUILD[@]}" -f docker/reward-server.Dockerfile -t openrlhf-reward-server .
fi
if [ "$WHAT" = trainer-cpu ] || [ "$WHAT" = all ]; then
  WHEELS="${TORCH_WHEEL_DIR:-}"
  if [ -z "$WHEELS" ] && ls /opt/wheels/torch-*+cpu-*.whl >/dev/null 2>&1; then WHEELS=/opt/wheels; fi
  EXTRA=()
  if [ -n "$WHEELS" ]; then EXTRA=(-v "$(realpath "$WHEELS"):/torch-wheels:ro" --build-arg TORCH_WHEEL_DIR=/torch-wheels); fi
  echo "[images] openrlhf-trainer-cpu${WHEELS:+ (torch from $WHEELS)}"
  "${BUILD[@]}" "${EXTRA[@]}" -f docker/trainer-cpu.Dockerfile -t openrlhf-trainer-cpu .
fi
"${PODMAN[@]}" images --filter reference='*openrlhf*' --format '{{.Repository}}:{{.Tag}} {{.Size}}'
