"""Jupyter server for the AlgoFS browser tests; started by run.sh, never for real use (auth is off).

Everything it creates (server root, embedded API server content, block cache) lives under
$ALGOFS_UI_WORK, which run.sh removes afterwards.
"""

import os
from pathlib import Path

from jupyterlab.galata import configure_jupyter_server

work = Path(os.environ["ALGOFS_UI_WORK"])

configure_jupyter_server(c)  # noqa: F821 - `c` is injected by the config loader
c.ServerApp.port = int(os.environ["ALGOFS_UI_PORT"])  # noqa: F821
c.ServerApp.ip = "127.0.0.1"  # noqa: F821
c.ServerApp.root_dir = str(work / "root")  # noqa: F821
c.ServerApp.allow_root = True  # noqa: F821
# configure_jupyter_server turns XSRF checks off, which Galata's own contents helpers (cookie-less
# request contexts) rely on; the panel still sends X-XSRFToken through ServerConnection.makeRequest.

# The extension as a user gets it: embedded demo API server (the default), FUSE mount at ./algofs.
# No auto-mount: the test presses "Mount".
c.AlgofsApp.auto_mount = False  # noqa: F821
c.AlgofsApp.embedded_root = str(work / "api-server")  # noqa: F821
c.AlgofsApp.cache_dir = str(work / "cache")  # noqa: F821
# Checkpoints of files on the mount (kept on local disk, issue 25) go here, not to the user's data dir.
c.AlgofsCheckpoints.algofs_checkpoint_root = str(work / "checkpoints")  # noqa: F821
if os.environ.get("ALGOFS_DISABLE_FUSE"):
    # Without FUSE, as on Binder and in `algofs demo`: the fallback contents manager serves ./algofs from
    # the API (the FUSE run keeps jupyter_server's own manager, the extension enabled alone).
    c.ServerApp.contents_manager_class = "algofs_jupyter.jupyter.contents.AlgofsContentsManager"  # noqa: F821
