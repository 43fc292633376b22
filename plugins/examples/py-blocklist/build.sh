#!/usr/bin/env bash
# Builds dist/blocklist.wasm with componentize-py (pip install -r requirements.txt);
# `./build.sh empty` builds dist/empty.wasm, the criterion bench's empty plugin.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
mkdir -p dist
if [ "${1:-}" = empty ]; then
  componentize-py -d ../../../wit -w plugin componentize empty -o dist/empty.wasm
else
  componentize-py -d ../../../wit -w plugin componentize app -o dist/blocklist.wasm
fi
