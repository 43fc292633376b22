#!/usr/bin/env bash
# Starts a Switchboard plugin project outside this repository:
#   plugins/new.sh rust|javascript|python DIR
# Rust uses the SDK (plugins/sdk) by path; JavaScript and Python get a copy
# of the contract (wit/) to build against. Each prints its one build command.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lang="${1:-}"
dest="${2:-}"
if [ -z "$lang" ] || [ -z "$dest" ]; then
  echo "usage: $0 rust|javascript|python DIR" >&2
  exit 2
fi
if [ -e "$dest" ]; then
  echo "$dest exists already" >&2
  exit 2
fi
name="$(basename "$dest" | tr -c 'a-zA-Z0-9_\n-' '-')"
case "$lang" in
  rust)
    mkdir -p "$dest"
    cp -r "$here/templates/rust/." "$dest/"
    crate="${name//-/_}"
    sed -i -e "s|@NAME@|$name|g" -e "s|@CRATE@|$crate|g" -e "s|@SDK@|$here/sdk|g" "$dest/Cargo.toml"
    echo "created $dest; build: (cd $dest && cargo build --release --target wasm32-wasip2)"
    echo "component: $dest/target/wasm32-wasip2/release/$crate.wasm"
    ;;
  javascript | python)
    src="$here/examples/js-blocklist"
    [ "$lang" = python ] && src="$here/examples/py-blocklist"
    mkdir -p "$dest"
    # Sources only: never node_modules or a build.
    (cd "$src" && git ls-files -z 2>/dev/null || find . -type f -not -path './node_modules/*' -not -path './dist/*' -print0) \
      | (cd "$src" && xargs -0 cp --parents -t "$dest")
    cp -r "$here/../wit" "$dest/wit"
    sed -i "s|\.\./\.\./\.\./wit|wit|g" "$dest"/package.json "$dest"/build.sh 2>/dev/null || true
    if [ "$lang" = javascript ]; then
      echo "created $dest; build: (cd $dest && npm ci && npm run build)"
    else
      echo "created $dest; build: (cd $dest && pip install -r requirements.txt && ./build.sh)"
    fi
    echo "component: $dest/dist/blocklist.wasm"
    ;;
  *)
    echo "unknown language \`$lang\`: rust, javascript or python" >&2
    exit 2
    ;;
esac
