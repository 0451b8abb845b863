#!/bin/bash
# The project's two set-up commands (README.md):
#   bash dev.sh demo   install, then run the isolation demo (runc and runsc-py side by side)
#   bash dev.sh test   install, then run the test suite
# Needs root: it installs Debian packages and runs real sandboxes.
set -euo pipefail
cd "$(dirname "$0")"

install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # docker.io's and containerd's postinst would start system daemons (with a bridge
    # and iptables rules); the tests start their own. Deny service starts during the
    # install, as Debian's container images do, unless a policy is already in place.
    local policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
    fi
    local status=0
    apt-get install -y -q $(grep -v '^#' debian-packages.txt) || status=$?
    if [ -n "$policy" ]; then rm -f "$policy"; fi
    [ "$status" -eq 0 ] || exit "$status"
    python3 -m pip install -q -e '.[test]'
    # Every runtime command is a fresh interpreter: compile once here, because with
    # PYTHONDONTWRITEBYTECODE set (as on these machines) nothing would be cached.
    python3 -m compileall -q runsc_py sentry syscalls gofer
}

case "${1:-}" in
    demo) install; exec python3 -m runsc_py.demo ;;
    # The whole suite once per platform (README: Platforms).
    test) install
          RUNSC_PY_PLATFORM=seccomp python3 -m pytest -q -p no:cacheprovider tests
          RUNSC_PY_PLATFORM=ptrace exec python3 -m pytest -q -p no:cacheprovider tests ;;
    *) echo "usage: bash dev.sh demo|test" >&2; exit 2 ;;
esac
