#!/usr/bin/env bash
# The demo: set up, build the static site into dist/, and serve it on this machine.
# Prints the address to open; Ctrl+C stops the server. Extra arguments go to `llama2np serve`
# (for example --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/llama2np build --out dist
exec .venv/bin/llama2np serve dist "$@"
