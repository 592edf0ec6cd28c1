"""Data-access layer: the Algorithmia Data API as an fsspec filesystem (protocol ``algo``)."""

from __future__ import annotations

import fsspec

from .errors import BackendUnavailable, StaleFile
from .filesystem import AlgoFileSystem
from .session import ApiSession

fsspec.register_implementation("algo", AlgoFileSystem, clobber=True)

__all__ = ["AlgoFileSystem", "ApiSession", "BackendUnavailable", "StaleFile"]
