#!/usr/bin/env bash
# Builds dist/blocklist.wasm with componentize-py (pip install -r requirements.txt).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
mkdir -p dist
componentize-py -d ../../../wit -w plugin componentize app -o dist/blocklist.wasm
