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
    apt-get install -y -q $(grep -v '^#' debian-packages.txt)
    python3 -m pip install -q -e '.[test]'
}

case "${1:-}" in
    demo) install; exec python3 -m runsc_py.demo ;;
    test) install; exec python3 -m pytest -q -p no:cacheprovider tests ;;
    *) echo "usage: bash dev.sh demo|test" >&2; exit 2 ;;
esac
