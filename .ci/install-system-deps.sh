#!/bin/sh
# System packages the test suite can use but does not require.
#
# - docker-compose (Debian's 1.29 Python build) lets tests/test_deploy_files.py validate
#   docker-compose.yml with `docker-compose config`, which needs no Docker engine.
# - promtool (Debian's `prometheus` package) lets tests/test_deploy_alerts.py check and
#   unit-test deploy/prometheus/blinkpos-rules.yml. The package's server is not started here.
#
# When apt is unavailable (no root, no network, not Debian) this script warns and exits 0:
# the tests that need a missing tool then skip and name the reason.
set -u

missing=""
command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"

if [ -z "$missing" ]; then
    echo "install-system-deps: docker-compose and promtool already present"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: apt-get not found; skipping$missing (their tests will skip)" >&2
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-system-deps: not root and no passwordless sudo; skipping$missing" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101: the prometheus package must not start its server on this machine.
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy" && created_policy=1
fi
# shellcheck disable=SC2086  # $missing is a list of package names
if $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends $missing; then
    echo "install-system-deps: installed$missing"
else
    echo "install-system-deps: apt-get could not install$missing; their tests will skip" >&2
fi
if [ -n "$created_policy" ]; then
    $SUDO rm -f "$policy"
fi
exit 0
