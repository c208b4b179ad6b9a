#!/usr/bin/env bash
# The whole test suite: lint, unit tests on CPython, end-to-end tests of the built site in
# Chromium. Installs what it needs (Python packages in .venv, Debian's chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's chromium for the end-to-end tests" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "the end-to-end tests need Chromium: run 'sudo apt-get install chromium' and retry." >&2
        exit 1
    fi
fi

bash scripts/setup.sh
.venv/bin/ruff check py tests
.venv/bin/python -m pytest "$@"
