#!/usr/bin/env bash
# pjdfstest on the mount (issue 24): runs its 13 syscall directories with `prove -r` from inside a collection
# of a fresh `algofs serve` mounted with `algofs mount`, as root, and prints the assertion pass rate.
# Not part of ./dev.sh test (pjdfstest comes from GitHub, unreachable from CI).
#
#   scripts/pjdfstest.sh /path/to/pjdfstest [extra `algofs mount` flags…]
#
# The checkout must be built (autoreconf -ifs && ./configure && make pjdfstest). Output: the per-test
# prove lines in $OUT (default /tmp/pjdfstest-run.log) and a summary line on stdout.
set -euo pipefail
PJD=$(cd "${1:?usage: scripts/pjdfstest.sh PJDFSTEST_CHECKOUT [algofs mount flags…]}" && pwd)
shift
[ "$(id -u)" = 0 ] || { echo "pjdfstest needs root" >&2; exit 2; }
[ -x "$PJD/pjdfstest" ] || { echo "$PJD/pjdfstest not built (autoreconf -ifs && ./configure && make pjdfstest)" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")/.." && pwd)
ALGOFS=${ALGOFS:-$HERE/.venv/bin/algofs}
OUT=${OUT:-/tmp/pjdfstest-run.log}
WORK=$(mktemp -d /tmp/pjdfstest-mount.XXXXXX)
chmod 700 "$WORK"
SERVER_PID=""
cleanup() {
    cd /
    if mountpoint -q "$WORK/mnt" 2>/dev/null; then
        "$ALGOFS" unmount "$WORK/mnt" >/dev/null 2>&1 || fusermount3 -u "$WORK/mnt" || fusermount3 -u -z "$WORK/mnt" || true
    fi
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    # never through a mount that is still there
    if ! mountpoint -q "$WORK/mnt" 2>/dev/null; then rm -rf "$WORK"; else echo "left $WORK (still mounted)" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
umask 077
head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$WORK/key"
chmod 755 "$WORK"  # pjdfstest switches to other uids (-u 65534): they must reach the mount; the key stays 0600
ALGOFS_SERVE_API_KEY=$(cat "$WORK/key") "$ALGOFS" serve --root "$WORK/root" --port 0 --user pjd \
    --ready-file "$WORK/ready" --log-file "$WORK/serve.log" >/dev/null 2>&1 &
SERVER_PID=$!
for _ in $(seq 120); do [ -s "$WORK/ready" ] && break; sleep 0.5; done
[ -s "$WORK/ready" ] || { echo "algofs serve did not start (log: $WORK/serve.log)" >&2; exit 1; }
ADDRESS=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("url") or d["address"])' "$WORK/ready" 2>/dev/null || head -1 "$WORK/ready")
mkdir "$WORK/mnt"
"$ALGOFS" mount --api-address "$ADDRESS" --api-key-file "$WORK/key" --cache-dir "$WORK/cache" \
    --log-file "$WORK/mount.log" --allow-other "$@" "$WORK/mnt"
for _ in $(seq 120); do mountpoint -q "$WORK/mnt" && break; sleep 0.5; done
umask 022
mkdir "$WORK/mnt/data/pjd/pjdfstest"
cd "$WORK/mnt/data/pjd/pjdfstest"
DIRS="chmod chown link mkdir mkfifo mknod open rename rmdir symlink truncate unlink utimensat"
set +e
for d in $DIRS; do prove -rv "$PJD/tests/$d" 2>&1; done > "$OUT"
set -e
cd /
# Assertions planned (each file's 1..N) and passed (its `ok N` lines); failures listed in ${OUT%.log}.failures
python3 "$HERE/scripts/pjdfstest_summary.py" "$OUT" "${OUT%.log}.failures"
