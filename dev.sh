#!/usr/bin/env bash
# The project's single entry point. Sets up everything a fresh Debian 12 machine lacks (system packages,
# the .venv/, the Python package, the JupyterLab extension build), then runs what was asked for:
#   ./dev.sh demo   embedded API server + FUSE mount + JupyterLab with the AlgoFS panel
#   ./dev.sh test   the whole test suite (lint, pytest, browser tests) - what .ci/run calls
#   ./dev.sh setup  only the set-up
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=$ROOT/.venv
export PATH="$VENV/bin:$PATH"

log() { printf '\033[1m[dev]\033[0m %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_system_packages() {
    # command -> Debian package that provides it
    local -A wanted=(
        [fusermount3]=fuse3 [rsync]=rsync [curl]=curl [rclone]=rclone [chromium]=chromium
        [node]=nodejs [npm]=npm [git]=git
        [bwrap]=bubblewrap [prlimit]=util-linux  # algorithm workers' sandbox and rlimits (docs/server.md)
    )
    local missing=()
    for cmd in "${!wanted[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
    done
    [ -e /usr/lib/x86_64-linux-gnu/libfuse3.so.3 ] || [ -n "$(ldconfig -p | grep libfuse3.so.3)" ] \
        || missing+=(libfuse3-3)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing system packages: ${missing[*]}"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip
    fi
    # Reinstall only when the project's declared dependencies or the extension sources changed.
    local stamp="$VENV/.algofs-installed"
    local want
    want=$({ cat pyproject.toml labextension/package.json labextension/yarn.lock 2>/dev/null || true; } \
        | sha256sum | cut -c1-16)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing algofs-jupyter (editable, with test and bench extras)"
        "$VENV/bin/pip" install -q -e ".[test,bench]"
        echo "$want" > "$stamp"
    fi
}

ensure_proxy() {
    # JupyterHub's proxy (tests/hub/, deploy/): configurable-http-proxy from npm, inside the venv.
    [ -x "$VENV/node_modules/.bin/configurable-http-proxy" ] && return 0
    log "installing configurable-http-proxy (npm) into $VENV/node_modules"
    npm install -q --no-fund --no-audit --prefix "$VENV" configurable-http-proxy@5 >/dev/null
}

ensure_labextension() {
    [ -f labextension/package.json ] || return 0
    if [ -x labextension/build.sh ]; then labextension/build.sh; fi
}

setup() {
    ensure_system_packages
    ensure_venv
    ensure_proxy
    ensure_labextension
}

cmd=${1:-help}
shift || true
case "$cmd" in
    setup) setup ;;
    demo)
        setup
        # The demo notebooks go into the demo root (never overwriting edits); 00-publish-... lists first.
        demo_root="$HOME/algofs-demo"
        mkdir -p "$demo_root" && cp -n notebooks/*.ipynb "$demo_root"/
        exec "$VENV/bin/algofs" demo --root-dir "$demo_root" "$@" ;;
    test)
        setup
        exec "$ROOT/scripts/run-tests.sh" "$@" ;;
    *)
        sed -n '2,7p' "$0"; exit 2 ;;
esac
