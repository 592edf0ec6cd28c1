"""The FUSE daemon (``algofs mount``). mfusepy must load libfuse3 (1 MiB requests, see
docs/design notes), so the library is chosen here, before any module imports mfusepy."""

import os

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
