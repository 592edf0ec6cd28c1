#!/usr/bin/env bash
# The project's single entry point. Sets up everything a fresh Debian 12 machine lacks (system packages,
# the .venv/, the Python package, the JupyterLab extension build), then runs what was asked for:
#   ./dev.sh demo   embedded API server + FUSE mount + JupyterLab with the AlgoFS panel
#   ./dev.sh test   the whole test suite (lint, pytest, browser tests) - what .ci/run calls
#   ./dev.sh setup  only the set-up (everything the tests need)
# The demo sets up only what it needs (FUSE, the venv with the package and the demo notebooks' pandas, the
# labextension build); the tests add Chromium, rclone, the test and bench extras, the hub's proxy.
# ALGOFS_SETUP_PLAN=1 prints what a set-up would install and installs nothing.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=$ROOT/.venv
export PATH="$VENV/bin:$PATH"

log() { printf '\033[1m[dev]\033[0m %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_system_packages() {  # $1: demo | test
    # command -> Debian package that provides it
    local -A wanted=(
        [fusermount3]=fuse3 [curl]=curl [node]=nodejs [npm]=npm [git]=git
        [bwrap]=bubblewrap [prlimit]=util-linux  # algorithm workers' sandbox and rlimits (docs/server.md)
    )
    if [ "$1" = test ]; then
        # browser tests, peers in bench/ and tests, the s3fs-fuse compatibility test
        wanted+=([rsync]=rsync [rclone]=rclone [chromium]=chromium [s3fs]=s3fs)
    fi
    local missing=()
    for cmd in "${!wanted[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
    done
    [ -e /usr/lib/x86_64-linux-gnu/libfuse3.so.3 ] || [ -n "$(ldconfig -p | grep libfuse3.so.3)" ] \
        || missing+=(libfuse3-3)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    plan "system packages: ${wanted[*]} (missing here: ${missing[*]:-none})" && return 0
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing system packages: ${missing[*]}"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

ensure_venv() {  # $1: demo | test
    local extras stamp
    if [ "$1" = test ]; then extras="test,bench"; stamp="$VENV/.algofs-installed"
    else extras="demo"; stamp="$VENV/.algofs-installed-demo"; fi
    plan "python: pip install -e .[$extras]" && return 0
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip
    fi
    # Reinstall only when the project's declared dependencies or the extension sources changed.
    local want
    want=$({ cat pyproject.toml labextension/package.json labextension/yarn.lock 2>/dev/null || true; } \
        | sha256sum | cut -c1-16)
    if [ "$1" = demo ] && [ "$(cat "$VENV/.algofs-installed" 2>/dev/null)" = "$want" ]; then
        return 0  # the full set-up is a superset of the demo's
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing algofs-jupyter (editable, extras: $extras)"
        "$VENV/bin/pip" install -q -e ".[$extras]"
        echo "$want" > "$stamp"
    fi
}

ensure_proxy() {
    plan "npm: configurable-http-proxy into $VENV/node_modules" && return 0
    # JupyterHub's proxy (tests/hub/, deploy/): configurable-http-proxy from npm, inside the venv.
    [ -x "$VENV/node_modules/.bin/configurable-http-proxy" ] && return 0
    log "installing configurable-http-proxy (npm) into $VENV/node_modules"
    npm install -q --no-fund --no-audit --prefix "$VENV" configurable-http-proxy@5 >/dev/null
}

ensure_labextension() {
    plan "labextension: jlpm install + build (labextension/build.sh)" && return 0
    [ -f labextension/package.json ] || return 0
    if [ -x labextension/build.sh ]; then labextension/build.sh; fi
}

# In a planning run (ALGOFS_SETUP_PLAN=1) print what a step would do and succeed, so the step returns.
plan() { [ -n "${ALGOFS_SETUP_PLAN:-}" ] && echo "plan: $*"; }

setup() {  # $1: demo | test (default: everything)
    local what=${1:-test}
    ensure_system_packages "$what"
    ensure_venv "$what"
    if [ "$what" = test ]; then ensure_proxy; fi
    ensure_labextension
}

cmd=${1:-help}
shift || true
case "$cmd" in
    setup) setup ;;
    demo)
        setup demo
        [ -n "${ALGOFS_SETUP_PLAN:-}" ] && exit 0
        # The demo notebooks go into the demo root (never overwriting edits); 00-publish-... lists first.
        demo_root="$HOME/algofs-demo"
        mkdir -p "$demo_root" && cp -n notebooks/*.ipynb "$demo_root"/
        exec "$VENV/bin/algofs" demo --root-dir "$demo_root" "$@" ;;
    test)
        setup test
        [ -n "${ALGOFS_SETUP_PLAN:-}" ] && exit 0
        exec "$ROOT/scripts/run-tests.sh" "$@" ;;
    *)
        sed -n '2,7p' "$0"; exit 2 ;;
esac
