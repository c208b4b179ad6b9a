#!/usr/bin/env bash
# The whole test suite: lint, unit tests on CPython, end-to-end tests of the built site in
# Chromium. Installs what it needs (Python packages in .venv, Debian's chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

# The end-to-end tests open the site in Chromium, served also by Debian's stock nginx (run on
# a loopback port with a config of the tests' own; the package's own server is not started).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
{ command -v nginx >/dev/null 2>&1 && [ -f /etc/nginx/mime.types ]; } || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's ${missing[*]} for the end-to-end tests" >&2
        apt-get update -qq
        # Debian starts a newly installed service unless policy-rc.d says no: nginx's own
        # server on port 80 is not wanted, so a temporary policy says no while it installs.
        policy=/usr/sbin/policy-rc.d
        made_policy=""
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        if [ -n "$made_policy" ]; then rm -f "$policy"; fi
    else
        echo "the end-to-end tests need ${missing[*]}: run 'sudo apt-get install ${missing[*]}' and retry." >&2
        exit 1
    fi
fi

bash scripts/setup.sh
.venv/bin/ruff check py tests
# On every core (pytest-xdist): each test is independent of the others, browser tests included.
# A process per core already fills them, so NumPy's BLAS gets one thread in each: threads of its
# own would fight over the same cores.
OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" .venv/bin/python -m pytest -n auto "$@"
