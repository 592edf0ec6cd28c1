#!/usr/bin/env bash
# A virtualenv every local user can execute, for JupyterHub single-user servers (docs/deploy.md).
#   deploy/user-venv.sh [VENV] [SRC]
# VENV (default /opt/algofs/venv) gets /usr/bin/python3, this project's dependencies and jupyterhub; SRC
# (default VENV/../src) gets a copy of algofs_jupyter/ that a .pth file puts on the venv's path, and the
# server-extension config goes into VENV/etc/jupyter. A repo venv made by pyenv under /root (0700) cannot be
# run by other users (../shared/notes/scale.md, pitfall 1). Dependencies are reinstalled only when
# pyproject.toml's list changes, so reruns take about a second.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-/opt/algofs/venv}
SRC=${2:-$(dirname "$VENV")/src}
PY=/usr/bin/python3

deps=$("$PY" - "$REPO/pyproject.toml" <<'PYEOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["hub"]))
PYEOF
)
want=$(printf '%s\n' "$deps" | sha256sum | cut -c1-16)
stamp="$VENV/.algofs-deps"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    umask 022
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
    mapfile -t reqs <<<"$deps"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${reqs[@]}"
    echo "$want" > "$stamp"
fi
umask 022
mkdir -p "$SRC"
rsync -a --delete --exclude '__pycache__' --exclude '*.pyc' --exclude 'labextension' \
    "$REPO/algofs_jupyter/" "$SRC/algofs_jupyter/"
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$SRC" > "$site/algofs_jupyter_src.pth"
mkdir -p "$VENV/etc/jupyter/jupyter_server_config.d"
cp "$REPO/jupyter-config/jupyter_server_config.d/algofs_jupyter.json" "$VENV/etc/jupyter/jupyter_server_config.d/"
printf '#!%s\nimport sys\nfrom algofs_jupyter.cli import main\nsys.exit(main())\n' "$VENV/bin/python" \
    > "$VENV/bin/algofs"
chmod 755 "$VENV/bin/algofs"
chmod -R a+rX "$VENV" "$SRC"
