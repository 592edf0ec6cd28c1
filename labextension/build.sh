#!/usr/bin/env bash
# Build the AlgoFS JupyterLab extension for development; idempotent and cheap when nothing changed.
#   1. node deps: `jlpm install --immutable` from the committed yarn.lock, only when package.json/yarn.lock changed
#   2. build: `jlpm build` (tsc + jupyter-builder, development mode) into algofs_jupyter/labextension/,
#      only when the sources changed or the output is missing
#   3. link: the venv's share/jupyter/labextensions/algofs-jupyter becomes a symlink to that output
#      (`jupyter-builder develop --overwrite .`, successor of `jupyter labextension develop`), so
#      `jupyter labextension list` shows it and a rebuild needs no reinstall.
# Called by ../dev.sh. Env: VENV (default ../.venv), ALGOFS_LABEXT_FORCE=1 to rebuild anyway.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
VENV=${VENV:-$ROOT/.venv}
export PATH="$VENV/bin:$PATH"
OUT=$ROOT/algofs_jupyter/labextension
cd "$HERE"

log() { printf '\033[1m[labextension]\033[0m %s\n' "$*" >&2; }
digest() { cat "$@" | sha256sum | cut -c1-16; }

deps_stamp=node_modules/.algofs-deps
want_deps=$(digest package.json yarn.lock .yarnrc.yml)
if [ ! -d node_modules ] || [ "$(cat "$deps_stamp" 2>/dev/null)" != "$want_deps" ]; then
    log "installing node dependencies (jlpm, committed yarn.lock)"
    jlpm install --immutable
    echo "$want_deps" > "$deps_stamp"
fi

build_stamp=node_modules/.algofs-build
want_build=$(digest package.json yarn.lock tsconfig.json $(find src style -type f | LC_ALL=C sort))
if [ -n "${ALGOFS_LABEXT_FORCE:-}" ] || [ ! -f "$OUT/static/style.js" ] || [ ! -f "$OUT/package.json" ] \
        || [ "$(cat "$build_stamp" 2>/dev/null)" != "$want_build" ]; then
    log "building into ${OUT#"$ROOT"/}"
    jlpm build
    echo "$want_build" > "$build_stamp"
fi

# Where `jupyter labextension list` looks first for this Python environment.
link=$("$VENV/bin/python" -c 'import sys; print(sys.prefix)')/share/jupyter/labextensions/algofs-jupyter
if [ "$(readlink -f "$link" 2>/dev/null)" != "$(readlink -f "$OUT")" ]; then
    log "linking $link -> ${OUT#"$ROOT"/}"
    (cd "$ROOT" && jupyter-builder develop --overwrite . >/dev/null)
fi
