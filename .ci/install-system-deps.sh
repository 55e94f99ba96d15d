#!/bin/sh
# System packages the test suite can use but does not require.
#
# docker-compose (Debian's 1.29 Python build) lets tests/test_deploy_files.py
# validate docker-compose.yml with `docker-compose config`, which needs no
# Docker engine. When apt is unavailable (no root, no network, not Debian)
# this script warns and exits 0: that test then skips and names the reason.
set -u

if command -v docker-compose >/dev/null 2>&1; then
    echo "install-system-deps: docker-compose already present: $(docker-compose version --short 2>/dev/null)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: apt-get not found; skipping docker-compose (compose validation will skip)" >&2
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-system-deps: not root and no passwordless sudo; skipping docker-compose" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends docker-compose; then
    echo "install-system-deps: installed docker-compose $(docker-compose version --short 2>/dev/null)"
else
    echo "install-system-deps: apt-get could not install docker-compose; compose validation will skip" >&2
fi
exit 0
