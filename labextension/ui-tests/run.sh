#!/usr/bin/env bash
# Browser tests of the AlgoFS panel: a real JupyterLab (with the built extension, its embedded demo API server
# and a real FUSE mount) in a temp root on a free 127.0.0.1 port, driven by Galata/Playwright in headless
# Debian Chromium. Screenshots, server log and Playwright report go to test-artifacts/ui-tests/.
# Everything started here (Jupyter server, and through it the API server and the mount) is stopped on exit,
# pass or fail; a mount left under the temp dir is unmounted.
# Called by scripts/run-tests.sh. Extra arguments go to `playwright test` (e.g. -g "dark").
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=${VENV:-$ROOT/.venv}
export PATH="$VENV/bin:$PATH"
ARTIFACTS=${ALGOFS_UI_ARTIFACTS:-$ROOT/test-artifacts/ui-tests}  # another dir for runs side by side

log() { printf '\033[1m[ui-tests]\033[0m %s\n' "$*" >&2; }
digest() { cat "$@" | sha256sum | cut -c1-16; }

# 1. The extension, built and linked into the venv (no-op when nothing changed).
"$HERE/../build.sh"

# 2. Galata + Playwright from the committed lockfile; no browser download (Debian's Chromium is used).
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
cd "$HERE"
want=$(digest package.json package-lock.json)
if [ ! -d node_modules ] || [ "$(cat node_modules/.algofs-deps 2>/dev/null)" != "$want" ]; then
    log "installing Galata/Playwright (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > node_modules/.algofs-deps
fi

# 3. A Jupyter server in its own temp world; stop_server/stop_all undo everything it started.
rm -rf "$ARTIFACTS"
mkdir -p "$ARTIFACTS"
WORK=$(mktemp -d /tmp/algofs-ui-XXXXXX)
SERVER_PID=

unmount_leftovers() {
    # The extension unmounts in stop_extension; this is only the safety net (and makes the run fail).
    local mnt found=0
    for mnt in $(awk -v w="$WORK/" '$3 ~ /^fuse/ && index($2, w) == 1 {print $2}' /proc/mounts); do
        log "unmounting leftover $mnt"; found=1
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" || true
    done
    return $found
}

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        log "stopping the Jupyter server (pid $SERVER_PID)"
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server ignored SIGTERM for 30 s: killing it"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
    unmount_leftovers
}

stop_all() {
    local rc=$?
    stop_server || rc=1
    rm -rf "$WORK"
    exit "$rc"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_server NAME [VAR=value ...]: JupyterLab with the extension on a free port; sets PORT and SERVER_PID.
start_server() {
    local name=$1; shift
    local dir=$WORK/$name
    mkdir -p "$dir/root" "$dir/runtime" "$dir/config"
    PORT=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log "starting JupyterLab ($name) on 127.0.0.1:$PORT, root $dir/root"
    # Started in its root, as `algofs demo` starts JupyterLab: a terminal from the top folder's launcher
    # opens in the server's working directory (jupyter_server_terminals resolves cwd "" against it).
    env -C "$dir/root" "$@" ALGOFS_UI_WORK="$dir" ALGOFS_UI_PORT="$PORT" JUPYTER_RUNTIME_DIR="$dir/runtime" \
        JUPYTER_CONFIG_DIR="$dir/config" \
        jupyter lab --config "$HERE/jupyter_server_test_config.py" >"$ARTIFACTS/jupyter-server-$name.log" 2>&1 &
    SERVER_PID=$!
    local i
    for i in $(seq 1 120); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "the Jupyter server exited during start-up:"; tail -30 "$ARTIFACTS/jupyter-server-$name.log" >&2
            return 1
        fi
        if curl -fs -o /dev/null "http://127.0.0.1:$PORT/api/status"; then return 0; fi
        sleep 0.5
    done
    log "the Jupyter server did not answer in 60 s"; return 1
}

# run_specs NAME [playwright args]: Playwright's output and report go to ARTIFACTS/playwright-*-NAME.
run_specs() {
    local name=$1; shift
    TARGET_URL="http://127.0.0.1:$PORT" ALGOFS_ARTIFACTS="$ARTIFACTS" ALGOFS_RUN_NAME="$name" \
        ALGOFS_REPO="$ROOT" npx playwright test "$@"
}

# 4. The specs: the normal ones against a server with FUSE, the @fallback ones against one without.
log "browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
status=0
extra=()
[ $# -gt 0 ] && extra=(--pass-with-no-tests)  # a -g filter may leave the FUSE run empty
start_server fuse
run_specs fuse --grep-invert @fallback "${extra[@]}" "$@" || status=1
stop_server || status=1
start_server fallback ALGOFS_DISABLE_FUSE=1
# The last --grep wins: the fallback run always runs the @fallback spec, whatever -g was given.
run_specs fallback "$@" --grep @fallback || status=1
stop_server || status=1
exit $status
