#!/usr/bin/env bash
# Build the demo site and serve it on this machine; prints the address to open.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/llama2np generate stories260K/stories260K.bin -z stories260K/tok512.bin -t 0.8 -i "${1:-Once upon a time}"
