#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh: a Python 3.12 virtual environment in
# .venv with the project installed (editable) and the pinned tool chain, then the model files.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
    # pyenv resolves .python-version (3.12) for `python`; otherwise look for python3.12.
    for candidate in python python3.12 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "llama2np needs Python 3.12 (the browser's Pyodide runs 3.12); install it (pyenv install 3.12) and retry." >&2
    exit 1
}

# `llama2np build` gets the Pyodide runtime with npm (once; then from .cache/site-sources) and
# runs the page's Python once in Node to learn what it imports (every build).
if ! command -v node >/dev/null 2>&1 || { ! command -v npm >/dev/null 2>&1 && [ ! -d .cache/site-sources ]; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's nodejs and npm to build the site" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "building the site needs Node.js and npm: run 'sudo apt-get install nodejs npm' and retry." >&2
        exit 1
    fi
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
    rm -rf .venv
    "$(find_python)" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r build/requirements-dev.txt
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
.venv/bin/llama2np fetch
