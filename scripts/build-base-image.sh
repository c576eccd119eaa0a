#!/usr/bin/env bash
# Build the stand-in for docker.io/library/python:3.11-slim-bookworm from Debian
# packages (image registries cannot be reached from these machines):
#   scripts/build-base-image.sh [IMAGE]     (default localhost/worldcover-base:bookworm)
# A minbase bookworm with python3 (3.11), python3-venv and the CA bundle,
# made with mmdebstrap and imported into podman. Does nothing when IMAGE exists.
set -euo pipefail

IMAGE=${1:-localhost/worldcover-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if podman image exists "$IMAGE"; then
    echo "base image $IMAGE exists"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/worldcover-base.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$tmp/rootfs.tar" "$MIRROR"
podman import --quiet "$tmp/rootfs.tar" "$IMAGE" >/dev/null
echo "base image $IMAGE built from Debian bookworm packages"
