#!/usr/bin/env bash
# Install Debian's headless-capable Chromium (/usr/bin/chromium) with apt-get when it is missing: the web
# map test (tests/test_mosaic_serve.py) drives it through playwright, which must never download a browser
# of its own. Idempotent; needs root (or sudo) only to install. `.ci/run` and `make web` call it.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
fi

if [ ! -x /usr/bin/chromium ]; then
    echo "setup-chromium: installing chromium" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version >&2
