#!/usr/bin/env bash
# The whole test suite, in the order that fails fastest. Called by `./dev.sh test` and `.ci/run`.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
status=0

echo "== ruff"
ruff check algofs_jupyter tests bench || status=1

echo "== mypy"
mypy || status=1   # the packages and settings are in pyproject.toml [tool.mypy]

echo "== pytest"
python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "pytest collected no tests: that is a failure"; rc=1; fi
[ $rc -ne 0 ] && status=$rc

if [ -x labextension/ui-tests/run.sh ] && [ -z "${ALGOFS_SKIP_BROWSER:-}" ]; then
    echo "== browser tests (Galata, /usr/bin/chromium)"
    labextension/ui-tests/run.sh || status=1
fi

# Nothing we mounted may outlive the suite.
if grep -q ' fuse.algofs ' /proc/mounts; then
    echo "stale algofs mounts left behind:"; grep ' fuse.algofs ' /proc/mounts
    status=1
fi
exit $status
