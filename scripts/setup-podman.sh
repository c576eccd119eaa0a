#!/usr/bin/env bash
# Make this machine able to build and run the worldcover image with podman
# (the recipe of CONTAINERS.md): install podman, runc and mmdebstrap with
# apt-get when they are missing, and configure podman to use runc with no
# default ulimits or pids limit (crun cannot set rlimits here and the cgroup
# layout is hybrid). Idempotent; needs root (or sudo) only to install or to
# write the configuration. `.ci/run` calls it before `make test`.
set -euo pipefail

CONF=${CONTAINERS_CONF_PATH:-/etc/containers/containers.conf}
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
fi

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-podman: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

read -r -d '' WANT <<'CONF' || true
# written by worldcover scripts/setup-podman.sh (see ../shared/CONTAINERS.md)
[containers]
default_ulimits = []
pids_limit = 0

[engine]
runtime = "runc"
CONF

if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$WANT" ]; then
    if [ -f "$CONF" ] && ! grep -q "worldcover scripts/setup-podman.sh" "$CONF"; then
        $SUDO cp "$CONF" "$CONF.before-worldcover"
        echo "setup-podman: kept the previous $CONF as $CONF.before-worldcover" >&2
    fi
    $SUDO mkdir -p "$(dirname "$CONF")"
    printf '%s\n' "$WANT" | $SUDO tee "$CONF" >/dev/null
    echo "setup-podman: wrote $CONF" >&2
fi
